import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def default_tokenizer():
    from transformers import AutoTokenizer

    from engine.models import resolve

    return AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
