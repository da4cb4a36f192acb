"""Admin use-cases: authorization and audit, curation, retraining, reports."""
