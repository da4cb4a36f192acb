"""Everything torch: loading and bootstrap, generation backends, fine-tuning, versions."""
