"""Which counter of each inference server is its work done, and reading it from /metrics text.

What each server exports (checked against its documentation; see README.md in this folder):

- vLLM: ``vllm:generation_tokens_total`` (counter, labels ``model_name``, and ``engine`` in the
  V1 engine): tokens generated. Summed over its series (data-parallel engines).
- Triton: ``nv_inference_count`` (counter, labels ``model``, ``version``): inferences performed,
  a batch of n counting n. One server may serve many models: ``labels = {model = "…"}`` picks one.
- TGI: ``tgi_request_generated_tokens`` is a histogram of tokens generated per request; its
  ``_sum`` series is the total tokens generated.
- custom: a counter named in the config (its sample name, with or without ``_total``).

Values are parsed by prometheus_client's text parser. Only the lines of the wanted series are
handed to it: a vLLM /metrics page is mostly histogram buckets we do not need.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

# kind → (sample name, default unit)
KINDS = {
    "vllm": ("vllm:generation_tokens_total", "tokens"),
    "triton": ("nv_inference_count", "samples"),
    "tgi": ("tgi_request_generated_tokens_sum", "tokens"),
}


class ScrapeError(ValueError):
    """The page does not hold the counter, or holds it garbled."""


def sample_names(kind: str, metric: str | None) -> tuple[str, ...]:
    if kind == "custom":
        if not metric:
            raise ValueError("a custom progress scrape needs a metric name")
        return (metric,) if metric.endswith("_total") else (metric, metric + "_total")
    return (KINDS[kind][0],)


def default_unit(kind: str) -> str:
    return KINDS[kind][1] if kind in KINDS else "requests"


def work_done(text: str, names: tuple[str, ...], labels: dict[str, str] | None = None) -> float:
    """The sum of every series of *names* whose labels include *labels*; ScrapeError when there
    is none, or a value is not a finite number >= 0."""
    lines = [line for line in text.splitlines()
             if line.startswith(names) and line[len(_prefix(line, names)):][:1] in ("{", " ", "\t")]
    total, found = 0.0, 0
    try:
        for family in text_string_to_metric_families("\n".join(lines) + "\n"):
            for sample in family.samples:
                if sample.name not in names or any(sample.labels.get(k) != v for k, v in (labels or {}).items()):
                    continue
                if not math.isfinite(sample.value) or sample.value < 0:
                    raise ScrapeError(f"{sample.name} is {sample.value!r}, not a counter value")
                total += sample.value
                found += 1
    except ScrapeError:
        raise
    except (ValueError, IndexError, KeyError) as exc:  # what the parser raises for a garbled line
        raise ScrapeError(f"cannot parse {names[0]}: {exc}") from None
    if not found:
        where = f" with labels {labels}" if labels else ""
        raise ScrapeError(f"no {' or '.join(names)} series{where} on the page")
    return total


def _prefix(line: str, names: tuple[str, ...]) -> str:
    return max((n for n in names if line.startswith(n)), key=len)
