import pytest

from model.backends.base import GenerationRequest, SamplingParams, ServesSeveralVersions
from model.backends.fake import ScriptedBackend


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


async def test_the_scripted_backend_serves_a_named_resident_version_and_says_so():
    backend = ScriptedBackend(model_version="v1")
    assert isinstance(backend, ServesSeveralVersions)
    await backend.load_version("v2", "/models/v2")
    assert backend.resident_versions == ("v1", "v2")
    params = SamplingParams()
    named = await backend.submit(GenerationRequest("hi", params, version="v2")).result()
    plain = await backend.submit(GenerationRequest("hi", params)).result()
    await backend.unload_version("v2")
    gone = await backend.submit(GenerationRequest("hi", params, version="v2")).result()
    assert (named.model_version, plain.model_version, gone.model_version) == ("v2", "v1", "v1")
