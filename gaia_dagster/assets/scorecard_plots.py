"""Metadata renderings of regional scorecards and rank intervals for the Dagster UI: WeatherBench2
style scorecard pictures (blue better, red worse than the reference), the scorecard table, and the
15-day leaderboard's rank intervals as columns and as a chart."""

import math
from typing import Any, Iterable, Mapping, Sequence

from dagster import MetadataValue, TableColumn

from gaia_dagster.assets.plots import _figure, drawn_png_markdown, png_markdown, records_table, table_cell
from gaia_dagster.core.scoring.regions import WB2_REGIONS

# WeatherBench2's headline fields, in its scorecards' order; a scorecard shows those it holds.
HEADLINE_FIELDS = (("z", 500), ("t", 850), ("q", 700), ("u", 850), ("v", 850), ("2t", 0), ("10u", 0),
                   ("10v", 0), ("msl", 0))
TABLE_LEADS = (24, 72, 120, 168, 240)   # 1, 3, 5, 7 and 10 days, as WeatherBench2's scorecards
COLOUR_LIMIT = 50.0                      # percent: the colour scale's end

RANK_COLUMNS = [
    TableColumn("mean_15d", "float", "mean overall score over the 15-day window (0 on a day without a score)"),
    TableColumn("rank_15d", "int", "rank by that mean (1 = best); informs people, sets no weight"),
    TableColumn("rank_low", "int", "best rank of the 90% interval (circular block bootstrap over days)"),
    TableColumn("rank_high", "int", "worst rank of the 90% interval"),
    TableColumn("p_vs_next", "float", "p-value of the paired test against the next miner down (AR(2)-corrected "
                                      "t-test over days, WeatherBench-X's Geer correction)"),
    TableColumn("beats_next", "bool", "the difference to the next miner down is significant (p < 0.05)"),
]

SCORECARD_COLUMNS = [
    TableColumn("uid", "int", "the miner's UID on the subnet"),
    TableColumn("hotkey", "string", "the miner's hotkey, in full"),
    TableColumn("region", "string", "WeatherBench2 region"),
    TableColumn("field", "string", "variable and level"),
    TableColumn("lead_hours", "int", "hours after the GFS T0"),
    TableColumn("rmse", "float", "latitude-weighted RMSE over the region"),
    TableColumn("bias", "float", "latitude-weighted mean error over the region"),
    TableColumn("acc", "float", "anomaly correlation against climatology over the region"),
    TableColumn("skill", "float", "1 - MSE / MSE of climatology over the region"),
    TableColumn("rmse_vs_clim_pct", "float", "100 (RMSE / climatology's RMSE - 1): negative is better"),
]


def field_label(variable: str, level: int | None) -> str:
    """``z500`` for a level, ``2t`` at the surface."""
    return f"{variable}{level}" if level else variable


def rmse_change_pct(row: Mapping[str, Any]) -> float:
    """WeatherBench2's scorecard value: the RMSE's change against the reference's, in percent."""
    rmse, ref = table_cell(row.get("rmse"), "float"), table_cell(row.get("reference_rmse"), "float")
    return 100.0 * (rmse / ref - 1.0) if rmse is not None and ref else math.nan


def held_fields(rows: Iterable[Mapping[str, Any]]) -> set[tuple[str, int]]:
    """The (variable, level) fields of scorecard rows, level 0 at the surface."""
    return {(r["variable"], int(r.get("level") or 0)) for r in rows}


def shown_fields(held: Iterable[tuple[str, int]], most: int = 12) -> list[tuple[str, int]]:
    """The headline fields of those ``held``; when it holds none, its first ``most`` fields."""
    held = sorted(set(held))
    headline = [f for f in HEADLINE_FIELDS if f in held]
    return headline or held[:most]


def scorecard_table(by_miner: Mapping[str, Sequence[Mapping[str, Any]]],
                    uids: Mapping[str, int | None]) -> MetadataValue:
    """Every miner's headline fields per region at 1, 3, 5, 7 and 10 days."""
    out = []
    for hotkey, rows in by_miner.items():
        fields = set(shown_fields(held_fields(rows)))
        out += [{**r, "uid": uids.get(hotkey), "hotkey": hotkey, "field": field_label(r["variable"], r["level"]),
                 "rmse_vs_clim_pct": rmse_change_pct(r)}
                for r in rows if (r["variable"], int(r["level"] or 0)) in fields and r["lead_hours"] in TABLE_LEADS]
    return records_table(out, SCORECARD_COLUMNS)


def scorecard_charts(by_miner: Mapping[str, Sequence[Mapping[str, Any]]],
                     labels: Mapping[str, str]) -> dict[str, MetadataValue]:
    """Every miner's scorecard (``ScorecardFigure``), by hotkey: miners whose scorecards have the
    same regions, fields and leads share one figure, drawn once."""
    figures: dict[tuple, ScorecardFigure] = {}
    out = {}
    for hotkey, rows in by_miner.items():
        label = labels[hotkey]
        layout = scorecard_layout(rows)
        if layout is None:
            out[hotkey] = MetadataValue.md(f"_no regional scores for {label}_")
            continue
        if layout not in figures:
            figures[layout] = ScorecardFigure(*layout)
        out[hotkey] = figures[layout].picture(rows, label)
    return out


def scorecard_layout(rows: Sequence[Mapping[str, Any]]) -> tuple[tuple, tuple, tuple] | None:
    """A scorecard's (fields, regions, leads): the shown fields, the regions in WeatherBench2's
    order, the leads in order; None without a field or a lead."""
    fields = shown_fields(held_fields(rows))
    order = {r.name: i for i, r in enumerate(WB2_REGIONS)}
    regions = sorted({r["region"] for r in rows}, key=lambda name: (order.get(name, len(order)), name))
    leads = sorted({int(r["lead_hours"]) for r in rows})
    return (tuple(fields), tuple(regions), tuple(leads)) if fields and leads else None


class ScorecardFigure:
    """A miner's scorecard: a panel per region, a row per headline field, a column per lead; each
    cell the RMSE's change against climatology in percent (blue better, red worse, +-50% at the ends).

    The figure of one layout is built and drawn once, without its cells, the tick marks and frames
    around them and the title; each miner's picture draws only those again, in the full draw's
    order, over a copy of that background, so it is the picture a full draw gives, at a fraction of
    the cost. Should any other part of the figure reach into a panel (a cramped layout), every
    picture is drawn in full instead."""

    def __init__(self, fields: Sequence[tuple[str, int]], regions: Sequence[str], leads: Sequence[int]) -> None:
        import numpy as np

        self.fields, self.regions, self.leads = fields, regions, leads
        figure = self.figure = _figure()
        cols = min(4, len(regions))
        figure.set_size_inches(2.6 * cols, 0.3 * len(fields) * math.ceil(len(regions) / 4) + 1.6)
        self.panels = []
        for i, region in enumerate(regions):
            axes = figure.add_subplot(math.ceil(len(regions) / cols), cols, i + 1)
            image = axes.imshow(np.full((len(fields), len(leads)), math.nan), cmap="RdBu_r", vmin=-COLOUR_LIMIT,
                                vmax=COLOUR_LIMIT, aspect="auto")
            axes.set_title(region, fontsize=8)
            axes.set_xticks(range(len(leads)), [str(h // 24) for h in leads], fontsize=6)
            axes.set_yticks(range(len(fields)), [field_label(v, lev) for v, lev in fields] if i % cols == 0 else [],
                            fontsize=6)
            marks = [line for axis in (axes.xaxis, axes.yaxis) for tick in axis.get_major_ticks()
                     for line in (tick.gridline, tick.tick1line, tick.tick2line) if line.get_visible()]
            self.panels.append((axes, image, marks, list(axes.spines.values())))
        figure.colorbar(image, ax=figure.axes, shrink=0.8, label="RMSE vs climatology (%)")
        self.title = figure.suptitle("", fontsize=9)
        redrawn = [self.title, *(a for _, image, marks, frame in self.panels for a in (image, *marks, *frame))]
        for artist in redrawn:
            artist.set_visible(False)
        figure.canvas.draw()
        self.background = np.asarray(figure.canvas.buffer_rgba()).copy()
        for artist in redrawn:
            artist.set_visible(True)
        self.blit = not self._reaches_a_panel(figure.canvas.get_renderer())

    def _reaches_a_panel(self, renderer) -> bool:  # noqa: ANN001
        """Whether any text, the colour bar or another panel's tick marks overlap a panel."""
        texts = [t.get_window_extent(renderer) for axes in self.figure.axes
                 for t in (axes.title, axes.xaxis.label, axes.yaxis.label, *axes.get_xticklabels(),
                           *axes.get_yticklabels())
                 if t.get_visible() and t.get_text()]
        panels = [p[0] for p in self.panels]
        colourbar = [a.get_tightbbox(renderer) for a in self.figure.axes if a not in panels]
        marks = [[line.get_window_extent(renderer) for line in p[2]] for p in self.panels]
        for i, axes in enumerate(panels):
            panel = axes.bbox.padded(1.0)
            others = [box for j, boxes in enumerate(marks) if j != i for box in boxes]
            if any(box.overlaps(panel) for box in (*texts, *colourbar, *others)):
                return True
        return False

    def picture(self, rows: Sequence[Mapping[str, Any]], label: str) -> MetadataValue:
        """The scorecard of one miner's rows (of this figure's layout), as a PNG in markdown."""
        import numpy as np

        cell = {(r["region"], r["variable"], int(r["level"] or 0), int(r["lead_hours"])): rmse_change_pct(r)
                for r in rows}
        for region, (_, image, _, _) in zip(self.regions, self.panels):
            image.set_data(np.array([[cell.get((region, v, lev, lead), math.nan) for lead in self.leads]
                                     for v, lev in self.fields]))
        self.title.set_text(f"regional scorecard: {label} (lead in days)")
        alt = f"scorecard {label}"
        if not self.blit:
            return png_markdown(self.figure, alt)
        renderer = self.figure.canvas.get_renderer()
        np.asarray(renderer.buffer_rgba())[...] = self.background
        for _, image, marks, frame in self.panels:
            for artist in (image, *marks, *frame):
                artist.draw(renderer)
        self.title.draw(renderer)
        return drawn_png_markdown(self.figure, alt)


def rank_interval_chart(rows: Sequence[Mapping[str, Any]], top: int = 30) -> MetadataValue:
    """Each miner's 15-day rank (dot) and 90% interval (bar, once the window holds enough days),
    best first, labelled by UID; a red dot where the difference to the next miner down is significant."""
    ranked = sorted((r for r in rows if r.get("rank_15d") is not None), key=lambda r: (r["rank_15d"], r["hotkey"]))
    if not ranked:
        return MetadataValue.md("_no miners with a 15-day rank_")
    shown = ranked[:top]
    figure = _figure()
    axes = figure.add_subplot()
    for x, r in enumerate(shown):
        if r.get("rank_low") is not None:
            axes.plot([x, x], [r["rank_low"], r["rank_high"]], color="tab:blue", linewidth=4, alpha=0.5)
        axes.plot(x, r["rank_15d"], "o", color="tab:red" if r.get("beats_next") else "tab:blue")
    labels = [str(r["uid"]) if r.get("uid") is not None else str(r["hotkey"])[:6] for r in shown]
    axes.set_xticks(range(len(shown)), labels, fontsize=8, rotation=90 if len(shown) > 15 else 0)
    axes.invert_yaxis()
    axes.set_xlabel("miner UID (red: significantly better than the next)")
    axes.set_ylabel("15-day rank (90% interval)")
    axes.set_title("ranks with their uncertainty", fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return png_markdown(figure, "rank intervals")
