"""Comparing runs and recording results: the table and curves of several runs, and the small
folders under ``book/results/`` that let a chapter show a real run it did not train itself.

:func:`compare` trains every model with the same recipe and seeds (what the seed's main script does
with one seed) and writes ``curves.png``, ``results.md`` and ``results.csv``. Recorded runs
(:func:`export_run`, :func:`load_recorded`, :func:`recorded_runs`) live in :mod:`zfkit.recorded`
and are re-exported here.
"""
from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .atomic import write_atomic
from .recorded import Recorded, detailed_run, export_run, load_recorded, recorded_runs
from .train import History, TrainConfig, fit

__all__ = ["ResultsTable", "results_table", "plot_curves", "LiveCurves", "compare", "export_run",
           "Recorded", "load_recorded", "recorded_runs", "detailed_run"]


@dataclass(repr=False)
class ResultsTable:
    """A results table: ``rows`` of numbers (for CSV) and how to show them (markdown and HTML).

    Rows made with a ``reference`` (see :func:`results_table`) get two more columns, headed with
    ``reference_label``: numbers quoted from elsewhere, not computed here.
    """
    rows: list[dict[str, Any]]
    caption: str = ""
    reference_label: str = "seed"

    BASE = ("model", "runs", "best val acc", "best epoch", "test acc", "s/epoch", "train time")

    @property
    def columns(self) -> tuple[str, ...]:
        if not any("reference_best_val_acc" in r for r in self.rows):
            return self.BASE
        return self.BASE + (f"{self.reference_label}: best val acc",
                            f"{self.reference_label}: train time")

    def _cells(self, row: Mapping[str, Any]) -> list[str]:
        def pm(key: str, fmt: str) -> str:
            mean, std = row[f"{key}_mean"], row[f"{key}_std"]
            if mean is None:
                return "n/a"
            return format(mean, fmt) + ("" if std is None else f" ± {format(std, fmt)}")

        def quoted(key: str, fmt: str) -> str:
            value = row.get(key)
            return "n/a" if value is None else format(value, fmt)

        epochs = f" of {row['epochs_mean']:.0f}"
        cells = [row["model"], str(row["runs"]), pm("best_val_acc", ".2%"),
                 pm("best_epoch", ".0f" if row["runs"] == 1 else ".1f") + epochs,
                 pm("test_acc", ".2%"), pm("epoch_time", ".1f") + " s",
                 pm("train_time", ".0f") + " s"]
        if len(self.columns) > len(self.BASE):
            epochs = quoted("reference_epochs", ".0f")
            cells += [quoted("reference_best_val_acc", ".2%"),
                      quoted("reference_train_time_s", ".0f") + f" s ({epochs} epochs)"]
        return cells

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(self._cells(r)) + " |" for r in self.rows]
        return "\n".join(([self.caption, ""] if self.caption else []) + lines)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.rows[0]) if self.rows else ["model"])
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()

    def __str__(self) -> str:
        return self.to_markdown()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r))
                       + "</tr>" for r in self.rows)
        return (f'<table class="zfkit-results" style="font-size: 0.9em">'
                f"<caption>{html.escape(self.caption)}</caption><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table>")


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    if not values or any(v is None for v in values):
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def _data_sources(runs: Mapping[str, Sequence[History]]) -> str:
    """The data every run used, e.g. ``"generated-sample"`` (for captions and titles)."""
    return ", ".join(sorted({h.data_source for hs in runs.values() for h in hs}))


def results_table(runs: Mapping[str, Sequence[History]], caption: str = "", *,
                  reference: Mapping[str, Mapping[str, float]] | None = None,
                  reference_label: str = "seed") -> ResultsTable:
    """Mean (± sample standard deviation over seeds) of each model's results.

    Args:
        runs: model name -> the histories of its runs (one per seed).
        caption: a caption; the data the runs used is appended to it (e.g. "data:
            generated-sample"), so a table of smoke runs always says so.
        reference: model name -> quoted numbers shown beside the computed ones
            (``best_val_acc``, ``train_time_s``, ``epochs``), e.g.
            :data:`zfkit.train.SEED_REPORTED`.
        reference_label: the heading of the quoted columns.
    Returns:
        A :class:`ResultsTable`.
    """
    rows = []
    for name, histories in runs.items():
        row: dict[str, Any] = {"model": name, "runs": len(histories),
                               "data": ", ".join(sorted({h.data_source for h in histories}))}
        stats = {"epochs": [h.epochs_done for h in histories],
                 "best_val_acc": [h.best_val_acc for h in histories],
                 "best_epoch": [h.best_epoch for h in histories],
                 "test_acc": [h.test_acc for h in histories],
                 "epoch_time": [h.mean_epoch_time for h in histories],
                 "train_time": [h.total_time for h in histories],
                 "images_per_s": [h.mean_images_per_s for h in histories]}
        for key, values in stats.items():
            row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
        if reference is not None:
            quoted = reference.get(name, {})
            for key in ("best_val_acc", "train_time_s", "epochs"):
                row[f"reference_{key}"] = quoted.get(key)
        rows.append(row)
    sources = _data_sources(runs)
    caption = f"{caption} (data: {sources})" if caption else f"data: {sources}"
    return ResultsTable(rows, caption, reference_label)


def plot_curves(runs: Mapping[str, Sequence[History]], *, title: str = "",
                majority: float | None = None):
    """Loss and accuracy per epoch of several models, train dashed and val solid.

    With several seeds per model the line is the mean and the band spans the lowest to the
    highest run; a dot marks each run's best val epoch.

    Args:
        runs: model name -> its histories.
        title: the figure's title.
        majority: the share of the val split's most common class: the accuracy of always
            answering that class, the baseline to beat (drawn when given; otherwise chance,
            one class in the number of classes, is drawn).
    Returns:
        A matplotlib ``Figure`` with two panels (loss, accuracy).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    from .style import color_for

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for name, histories in runs.items():
        color = color_for(name)
        n = min(h.epochs_done for h in histories)
        epochs = np.arange(1, n + 1)
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            for phase, style in (("train", "--"), ("val", "-")):
                values = np.array([h.column(f"{phase}_{metric}")[:n] for h in histories])
                ax.plot(epochs, values.mean(0), style, color=color, label=f"{name} {phase}")
                if len(histories) > 1:
                    ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.15)
        for h in histories:
            ax_acc.plot(h.best_epoch, h.best_val_acc, "o", color=color, markersize=5)
    classes = {len(h.classes) for hs in runs.values() for h in hs}
    if majority is not None:
        ax_acc.axhline(majority, color="grey", linestyle=":",
                       label=f"majority class of val ({majority:.1%})")
    elif len(classes) == 1:  # guessing: one class in n
        n = classes.pop()
        ax_acc.axhline(1 / n, color="grey", linestyle=":", label=f"chance (1/{n})")
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss")
    ax_acc.set(title="Accuracy (dot: best val epoch)", xlabel="epoch", ylabel="accuracy")
    ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


class LiveCurves:
    """A :func:`~zfkit.train.fit` callback that redraws :func:`plot_curves` after every epoch, in
    place, in a notebook: the runs in ``finished`` and the one training now.

    Args:
        finished: model name -> histories of finished runs; the caller may keep adding to it.
        title: the figure's title.
    """

    def __init__(self, finished: Mapping[str, Sequence[History]] | None = None, *,
                 title: str = "") -> None:
        self.finished = finished if finished is not None else {}
        self.title = title
        self.drawn = False

    def __call__(self, history: History) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        name = history.model
        if name in self.finished:  # another seed of a finished model: draw it on its own
            name = f"{name} s{history.seed}"
        runs = {**self.finished, name: [history]}
        fig = plot_curves(runs, title=f"{self.title} (training {name}: epoch "
                                      f"{history.epochs_done}/{history.planned_epochs})")
        clear_output(wait=True)
        display(fig)
        plt.close(fig)
        self.drawn = True

    def close(self) -> None:
        """Remove the live figure (only if one was drawn: a cell's other output stays)."""
        if self.drawn:
            from IPython.display import clear_output
            clear_output()
            self.drawn = False


def compare(data: str | Path, out_dir: str | Path, *, models: Sequence[str] = ("alexnet", "zfnet"),
            seeds: int = 1, epochs: int | None = None, device: str = "auto",
            progress: bool = True, **overrides: Any) -> dict[str, list[History]]:
    """Train every model with the same recipe and seeds 0..seeds-1 (what the seed's script does),
    then write ``curves.png``, ``results.md`` and ``results.csv`` into ``out_dir``.

    Runs go to ``out_dir/<model>-s<seed>`` and resume when interrupted.

    Args:
        data: the crops folder.
        out_dir: where the runs and the outputs go.
        models: the models to train.
        seeds: how many seeds per model (mean ± std over them).
        epochs: epochs per run (default: the recipe's 50).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: progress bars and epoch lines.
        **overrides: other :class:`TrainConfig` settings, the same for every run.
    Returns:
        model name -> the histories of its runs.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    out_dir = Path(out_dir)
    settings = {**overrides, "device": device, **({"epochs": epochs} if epochs else {})}
    runs: dict[str, list[History]] = {}
    for name in models:
        for seed in range(seeds):
            config = TrainConfig(model=name, seed=seed, **settings)
            runs.setdefault(name, []).append(
                fit(config, data, out_dir / f"{name}-s{seed}", resume=True, progress=progress))
    caption = f"{len(models)} models x {seeds} seed(s), {epochs or TrainConfig().epochs} epochs"
    fig = plot_curves(runs, title=f"{caption}, data: {_data_sources(runs)}")
    write_atomic(out_dir / "curves.png", lambda f: fig.savefig(f, format="png"))
    table = results_table(runs, caption)
    write_atomic(out_dir / "results.md", lambda f: f.write((table.to_markdown() + "\n").encode()))
    write_atomic(out_dir / "results.csv", lambda f: f.write(table.to_csv().encode()))
    if progress:
        print(table.to_markdown())
        print(f"wrote {out_dir / 'curves.png'}, results.md and results.csv")
    return runs
