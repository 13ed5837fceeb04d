"""Pretrained-weight transfer between models whose YAMLs differ by inserted attention rows.

Ultralytics transfers weights by state-dict key (``model.6.cv1.conv.weight``). An attention row inserted after the
P3 stage shifts every later layer index by one, so the stock checkpoint's ``model.6`` (a downsampling Conv) meets
the attention model's ``model.6`` (another layer): shapes disagree and most tensors are silently skipped. Here rows
are aligned instead: each model's rows are reduced to a skeleton without attention rows, and the k-th skeleton row
of one model receives the k-th of the other when both are the same module type. Attention rows receive weights only
from an attention row of the same type sitting after the same skeleton row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers.registry import row_attention_layers


@dataclass
class TransferReport:
    """What :func:`transfer_by_rows` copied.

    Attributes:
        transferred: Number of destination tensors (parameters and buffers) that received source values.
        total: Number of destination tensors.
        skipped: ``"model.<i>.<name>: <reason>"`` for each destination tensor that kept its initial value.
    """

    transferred: int = 0
    total: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """One line for the log: 'transferred N/M tensors', then what was skipped, by reason and row.

        ``limit`` caps the rows named per reason.
        """
        text = f"transferred {self.transferred}/{self.total} tensors"
        if self.skipped:
            text += f", skipped {len(self.skipped)} (they keep their initial values): "
            text += "; ".join(group_skipped(self.skipped, limit))
        return text


def group_skipped(skipped: list[str], limit: int = 8) -> list[str]:
    """Summarise ``"model.<i>.<name>: <reason>"`` entries by reason, naming the rows and counting tensors.

    E.g. ``["no matching source row: model.5, model.8 (6 tensors)", "other shapes: model.24 (6 tensors, e.g.
    cls_preds.0.weight (80, 64, 1, 1) vs (3, 64, 1, 1))"]``.
    """
    by_reason: dict[str, dict[str, list[str]]] = {}
    for entry in skipped:
        key, _, why = entry.partition(": ")
        row = ".".join(key.split(".")[:2])
        reason = "other shapes" if why.startswith("shape ") else why
        by_reason.setdefault(reason, {}).setdefault(row, []).append(f"{key[len(row) + 1 :]} {why[len('shape ') :]}")
    lines = []
    for reason, rows in by_reason.items():
        names = ", ".join(list(rows)[:limit]) + (f", ... {len(rows) - limit} more rows" if len(rows) > limit else "")
        count = sum(map(len, rows.values()))
        example = f", e.g. {next(iter(rows.values()))[0]}" if reason == "other shapes" else ""
        lines.append(f"{reason}: {names} ({count} tensor{'s' if count > 1 else ''}{example})")
    return lines


def _row_keys(layers: nn.Sequential) -> dict[int, tuple]:
    """Key each row by its position in the attention-free skeleton: ('row', k) or ('attention', k after)."""
    keys, k = {}, -1
    for i, m in enumerate(layers):
        attention = row_attention_layers(m)
        if attention:
            keys[i] = ("attention", k, type(attention[0]).__name__)
        else:
            k += 1
            keys[i] = ("row", k, getattr(m, "type", type(m).__name__))
    return keys


def transfer_by_rows(model: nn.Module, source: nn.Module | dict) -> TransferReport:
    """Copy weights from ``source`` into ``model`` by aligned YAML rows (see the module docstring).

    Args:
        model: Destination Ultralytics model (``DetectionModel``), e.g. built from an attention YAML.
        source: Source model, or an Ultralytics checkpoint dict (its ``ema`` or ``model`` entry is used).

    Returns:
        A :class:`TransferReport`; the destination tensors that found no match keep their initial values.

    Raises:
        TypeError: If either side is not an Ultralytics model with a ``model`` layer list.
    """
    if isinstance(source, dict):
        source = source.get("ema") or source.get("model")
    for name, m in (("destination", model), ("source", source)):
        if not isinstance(getattr(m, "model", None), nn.Sequential):
            raise TypeError(f"transfer_by_rows: the {name} is not an Ultralytics model (got {type(m).__name__}).")
    src_layers, dst_layers = source.model, model.model
    src_by_key = {key: i for i, key in _row_keys(src_layers).items()}
    report = TransferReport()
    with torch.no_grad():
        for i, key in _row_keys(dst_layers).items():
            dst_state = dst_layers[i].state_dict(keep_vars=True)
            report.total += len(dst_state)
            j = src_by_key.get(key)
            if j is None:
                report.skipped += [f"model.{i}.{n}: no matching source row" for n in dst_state]
                continue
            src_state = src_layers[j].state_dict()
            for n, t in dst_state.items():
                s = src_state.get(n)
                if s is None or s.shape != t.shape:
                    why = "not in source" if s is None else f"shape {tuple(s.shape)} vs {tuple(t.shape)}"
                    report.skipped.append(f"model.{i}.{n}: {why}")
                    continue
                t.copy_(s.to(t.dtype))
                report.transferred += 1
    return report
