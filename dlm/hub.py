"""The Hugging Face hub: resolve a hub id to a local snapshot (offline-aware), and push a model with its card.

- :func:`resolve_model_dir`: a local directory is returned as is; a hub id (``"user/model"``) is fetched
  through ``huggingface_hub.snapshot_download`` into its cache (``HF_HUB_CACHE``), honouring
  ``HF_HUB_OFFLINE``. With no network, a cached snapshot is used; with none cached, one
  :class:`~dlm.errors.CheckpointError` names the files that are missing. Every network call has a
  timeout, so an unreachable hub is an error within seconds, never a hang.
- :func:`push_to_hub`: upload a dlm model directory (or a model and tokenizer) to a hub repository:
  weights (safetensors), config, tokenizer and a ``README.md`` model card (:mod:`dlm.model_card`).
  Training state (optimizer, RNG, pickles) is never uploaded. ``dry_run=True`` returns the exact
  files and card without any network call.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlm.errors import CheckpointError, InputError

#: Files of a dlm model directory that are fetched from and pushed to the hub (never pickles).
MODEL_FILES = (
    "config.json", "generation_config.json",
    "model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
    "adapter_config.json", "adapter_model.safetensors",
)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
)
CARD_FILE = "README.md"
#: What a model needs to load with :class:`~dlm.pipeline.DiffusionLMPipeline` (named in offline errors).
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json")
DEFAULT_TIMEOUT = 10.0
_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as huggingface_hub reads it, or as set since import."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().lower() in _TRUE


def looks_like_hub_id(name: str) -> bool:
    """``"model"`` or ``"user/model"`` that is not an existing or explicit local path."""
    if not name or name.startswith((".", "/", "~")) or Path(name).expanduser().exists():
        return False
    parts = name.split("/")
    return len(parts) <= 2 and all(parts) and "\\" not in name


def _weights_present(folder: Path) -> bool:
    return any(folder.glob("model*.safetensors")) or (folder / "adapter_model.safetensors").is_file()


def missing_files(folder: Path | None) -> list[str]:
    """Which of :data:`REQUIRED_FILES` ``folder`` lacks (sharded weights count as ``model.safetensors``)."""
    if folder is None or not folder.is_dir():
        return list(REQUIRED_FILES)
    missing = []
    for name in REQUIRED_FILES:
        if name == "model.safetensors":
            if not _weights_present(folder):
                missing.append(name)
        elif name == "tokenizer.json":
            if not ((folder / name).is_file() or (folder / "vocab.json").is_file() or (folder / "tokenizer.model").is_file()):
                missing.append(name)
        elif not (folder / name).is_file():
            missing.append(name)
    return missing


def _cached_snapshot(repo_id: str, revision: str | None, cache_dir: str | None) -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` in the local hub cache, if any (no network)."""
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    revision = revision or "main"
    ref = root / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    folder = root / "snapshots" / commit
    return folder if folder.is_dir() else None


def _oneline(err: BaseException) -> str:
    return " ".join(str(err).split())[:240]


def _missing_error(repo_id: str, revision: str | None, cache_dir: str | None, reason: str) -> CheckpointError:
    from huggingface_hub import constants

    cache = cache_dir or constants.HF_HUB_CACHE
    missing = missing_files(_cached_snapshot(repo_id, revision, cache_dir))
    return CheckpointError(
        f"model '{repo_id}' is not in the local hub cache ({cache}) and {reason}: "
        f"missing {', '.join(missing)}",
        hint=f"connect and retry, download it once with `hf download {repo_id}`, or give a local directory")


def resolve_model_dir(name_or_path: str | Path, revision: str | None = None, cache_dir: str | None = None,
                      token: str | bool | None = None, endpoint: str | None = None,
                      timeout: float = DEFAULT_TIMEOUT) -> Path:
    """A local model directory for ``name_or_path``: itself when it is a local path, else a hub snapshot.

    Hub ids go through ``snapshot_download`` (only model, tokenizer and card files), which reuses the
    cache; offline (``HF_HUB_OFFLINE=1``) or with the hub unreachable the cached snapshot is returned,
    and without one a :class:`CheckpointError` names the missing files.
    """
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.exists() or not looks_like_hub_id(name):
        if not path.is_dir():
            raise CheckpointError(f"model directory {path} not found",
                                  hint="give a directory written by save_pretrained, dlm train or dlm convert, or a hub id")
        return path
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    offline, reason = hub_offline(), "HF_HUB_OFFLINE is set"
    commit = None
    if not offline:  # a bounded look-up first: snapshot_download's own has no timeout
        try:
            info = HfApi(endpoint=endpoint, token=token, library_name="dlm").model_info(
                name, revision=revision, timeout=timeout)
            commit = info.sha
        except GatedRepoError:
            raise CheckpointError(f"model '{name}' is gated on the hub",
                                  hint="accept its conditions on the hub and log in with `hf auth login`") from None
        except RepositoryNotFoundError:
            raise CheckpointError(f"no model repository '{name}' on the hub (or it is private)",
                                  hint="check the id (a local directory must exist), or log in with `hf auth login` for a private repository") from None
        except RevisionNotFoundError:
            raise CheckpointError(f"model '{name}' has no revision '{revision}' on the hub") from None
        except Exception as err:  # connection refused, DNS, timeout, 5xx: fall back to the cache
            offline, reason = True, f"the hub cannot be reached ({type(err).__name__}: {_oneline(err)})"
    try:
        folder = snapshot_download(
            name, revision=commit or revision, cache_dir=cache_dir, token=token, endpoint=endpoint,
            local_files_only=offline, allow_patterns=[*MODEL_FILES, *TOKENIZER_FILES, CARD_FILE],
            library_name="dlm", etag_timeout=timeout)
    except LocalEntryNotFoundError:
        raise _missing_error(name, revision, cache_dir, reason) from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot download model '{name}': {_oneline(err)}",
                              hint="retry, or give a local directory") from None
    folder = Path(folder)
    missing = missing_files(folder)
    if missing:
        where = f"the cached snapshot {folder}" if offline else f"hub repository '{name}'"
        raise CheckpointError(f"{where} lacks {', '.join(missing)}, so it is not a complete dlm model",
                              hint="push it with `dlm push` (model, tokenizer and card)" if not offline else
                              f"connect and retry to complete the download of '{name}'")
    return folder


# --- pushing ----------------------------------------------------------------------------------------------
def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def upload_files(model_dir: Path) -> list[str]:
    """The files of ``model_dir`` that :func:`push_to_hub` uploads (model, tokenizer, card), sorted."""
    return sorted(p.name for p in Path(model_dir).iterdir()
                  if p.is_file() and _matches(p.name, (*MODEL_FILES, *TOKENIZER_FILES, CARD_FILE)))


@dataclass
class PushResult:
    """What was (or, with ``dry_run``, would be) uploaded: the repository, file names, card text and commit."""

    repo_id: str
    files: list[str]
    card: str
    commit_url: str | None = None


def _check_pushable(folder: Path) -> None:
    """A clear error unless ``folder`` holds a config, weights and a tokenizer."""
    missing = missing_files(folder)
    if (folder / "adapter_config.json").is_file():  # a LoRA adapter: its base model is named in adapter_config
        missing = [m for m in missing if m not in ("config.json", "model.safetensors")]
    if missing:
        raise CheckpointError(f"{folder} lacks {', '.join(missing)}",
                              hint="push a directory written by dlm train (final/) or save_pretrained with its tokenizer")


def push_to_hub(model_or_dir, repo_id: str, *, tokenizer=None, card=None, run_dir: str | Path | None = None,
                private: bool | None = None, token: str | bool | None = None, revision: str | None = None,
                commit_message: str = "Upload dlm model", create_pr: bool = False, dry_run: bool = False,
                api=None, **card_kwargs) -> PushResult:
    """Upload a dlm model (a ``save_pretrained`` directory, or a model plus ``tokenizer``) with its model card.

    ``card``: a :class:`huggingface_hub.ModelCard`, markdown text or a path; by default the directory's own
    ``README.md`` when it has one (not peft's placeholder), else one generated by :func:`dlm.model_card.model_card` from the model,
    its training run (``run_dir``, found automatically for ``<run>/final``) and ``card_kwargs`` (license,
    datasets, ...). ``api`` is an ``HfApi`` (a stand-in in tests). Uploads exactly :func:`upload_files`
    of the staged directory plus ``README.md``; ``dry_run`` returns them without any network call.
    """
    with tempfile.TemporaryDirectory(prefix="dlm-push-") as tmp:
        staging = Path(tmp)
        if isinstance(model_or_dir, (str, Path)):
            source = Path(model_or_dir).expanduser()
            if not source.is_dir():
                raise CheckpointError(f"model directory {source} not found")
            for name in upload_files(source):
                shutil.copy2(source / name, staging / name)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
        else:
            if tokenizer is None:
                raise InputError("push_to_hub needs the tokenizer with a model object",
                                 hint="pass tokenizer=..., or a directory written by save_pretrained")
            source = None
            from dlm.training.checkpoint import save_model_dir

            save_model_dir(staging, model_or_dir, tokenizer)
            for extra in set(p.name for p in staging.iterdir()) - set(upload_files(staging)):
                os.remove(staging / extra)  # e.g. a README that peft writes next to adapters
        _check_pushable(staging)
        text = _card_text(card, staging, source, repo_id, run_dir, card_kwargs)
        (staging / CARD_FILE).write_text(text, encoding="utf-8")
        files = upload_files(staging)
        if dry_run:
            return PushResult(repo_id, files, text)
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token, library_name="dlm")
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        repo_id = getattr(repo, "repo_id", repo_id)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(staging), repo_type="model", revision=revision,
                                   commit_message=commit_message, create_pr=create_pr, allow_patterns=files)
        return PushResult(repo_id, files, text, getattr(commit, "commit_url", None) or (str(commit) if commit else None))


def _is_peft_stub(text: str) -> bool:
    """Whether a README is the placeholder card peft's ``save_pretrained`` writes next to adapters."""
    head = text.split("\n---", 1)[0]
    return "library_name: peft" in head and "[More Information Needed]" in text


def _card_text(card, staging: Path, source: Path | None, repo_id: str, run_dir, card_kwargs: dict) -> str:
    """Markdown of the card to upload (see :func:`push_to_hub`)."""
    if card is None and source is not None and (source / CARD_FILE).is_file():
        own = (source / CARD_FILE).read_text(encoding="utf-8")
        if not _is_peft_stub(own):
            return own
    if card is None:
        from dlm.model_card import model_card

        if run_dir is None and source is not None:
            from dlm.model_card import find_run_dir

            run_dir = find_run_dir(source)
        return str(model_card(staging, run_dir=run_dir, repo_id=repo_id, **card_kwargs))
    if isinstance(card, Path) or (isinstance(card, str) and "\n" not in card and Path(card).is_file()):
        return Path(card).read_text(encoding="utf-8")
    return str(card)
