# One entry point. `make test` and `make book` each do the whole set-up first
# (a .venv with pinned torch, this library in editable mode, the torchvision
# compatibility hook where needed), so each works on a fresh clone.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.perceptlab-installed

.PHONY: setup test book clean
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m perceptlab.course.tvcompat install
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (perceptlab)" >/dev/null
	touch $(STAMP)

test: $(STAMP)
	PERCEPTLAB_QUIET=1 $(PY) -m pytest

# -W turns warnings (and failing notebooks) into a non-zero exit; --keep-going reports them all.
book: $(STAMP)
	PERCEPTLAB_QUIET=1 PERCEPTLAB_PRESET=quick PERCEPTLAB_STRICT_CLAIMS=1 $(VENV)/bin/jupyter-book build . -W --keep-going

clean:
	rm -rf _build .jupyter_cache
