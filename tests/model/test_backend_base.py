import pytest


async def test_an_error_nobody_awaits_is_not_reported_as_unretrieved(caplog):
    import gc

    from model.backends.base import Cancelled, QueueHandle

    handle = QueueHandle()
    handle.put_error(Cancelled("gone"))
    del handle
    gc.collect()
    assert "exception was never retrieved" not in caplog.text

    awaited = QueueHandle()
    awaited.put_error(Cancelled("still raised"))
    with pytest.raises(Cancelled, match="still raised"):
        await awaited.result()
