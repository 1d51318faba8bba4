"""Metadata renderings of scores for the Dagster UI: the miner's identity, typed tables
(``MetadataValue.table``) and small charts embedded in markdown (PNG from matplotlib, SVG text for
the per-miner chart every ERA5 run draws).

matplotlib is imported inside the chart functions only, so loading the code location (every run
and step process does) never pays for it."""


import base64
import io
import math
import numbers
from xml.sax.saxutils import escape as xml_escape
from typing import Any, Mapping, Sequence

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from gaia_dagster.core.day_view import sig4

Cell = str | int | float | bool

# -- the miner behind a per-miner partition -----------------------------------------------------


def miner_metadata(repo, hotkey: str) -> dict[str, MetadataValue]:  # noqa: ANN001
    """``miner_uid`` (from the validator DB; null when the registry gave none) and the full
    ``miner_hotkey`` of a per-miner asset: the UI cuts a partition key short, the metadata does not."""
    miner = repo.miner(hotkey)
    uid = miner.uid if miner is not None else None
    return {"miner_uid": MetadataValue.int(uid) if uid is not None else MetadataValue.null(),
            "miner_hotkey": MetadataValue.text(hotkey)}


def miner_label(repo, hotkey: str) -> str:  # noqa: ANN001
    """``uid_label`` of a miner in the validator DB."""
    miner = repo.miner(hotkey)
    return uid_label(hotkey, miner.uid if miner is not None else None)


def uid_label(hotkey: str, uid: int | None) -> str:
    """A short name for a chart title: ``uid 7 (5FHneW46…)``, or the hotkey's start without a UID."""
    short = hotkey if len(hotkey) <= 10 else f"{hotkey[:8]}…"
    return f"uid {uid} ({short})" if uid is not None else short


# -- tables ---------------------------------------------------------------------------------------

_CASTS = {"int": int, "float": float, "string": str, "bool": bool}


def table_cell(value: Any, column_type: str) -> Cell | None:
    """``value`` as the column's type (numpy scalars become Python ones), or None for a cell without
    a value: missing, None, NaN or infinite. The UI parses each record with ``JSON.parse``, which
    rejects the bare ``NaN`` that ``json.dumps`` writes ("Could not parse record"); a null shows as
    an empty cell."""
    if value is None:
        return None
    if column_type == "int" and isinstance(value, numbers.Integral):
        return int(value)   # exact, however large
    if column_type in ("int", "float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        return int(number) if column_type == "int" else number
    return _CASTS.get(column_type, str)(value)


def shown_cell(value: Any, column_type: str) -> Cell | None:
    """``table_cell``, a float rounded to 4 significant digits."""
    cell = table_cell(value, column_type)
    return sig4(cell) if column_type == "float" and cell is not None else cell


def records_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[TableColumn]) -> MetadataValue:
    """A typed Dagster table of ``rows`` restricted to ``columns``. Every record has every column
    (``TableMetadataValue`` requires the same fields in all records); a cell without a value (see
    ``table_cell``) is None and shows empty in the UI. Floats are shown to 4 significant digits
    (``core.day_view.sig4``): the table is for people; the validator DB keeps every digit."""
    records = [TableRecord({c.name: shown_cell(row.get(c.name), c.type) for c in columns}) for row in rows]
    return MetadataValue.table(records=records, schema=TableSchema(columns=list(columns)))


LEADERBOARD_COLUMNS = [
    TableColumn("rank", "int", "position by overall score (ties by hotkey)"),
    TableColumn("uid", "int", "the miner's UID on the subnet"),
    TableColumn("hotkey", "string", "the miner's hotkey, in full"),
    TableColumn("status", "string", "the job's status in the validator DB"),
    TableColumn("day1_score", "float", "day-1 score against the GFS analysis (GAIA_SPEC 4)"),
    TableColumn("era5_score", "float", "ERA5 score over leads 24..240 h (GAIA_SPEC 5)"),
    TableColumn("overall_score", "float", "0.95 * ERA5 + 0.05 * [day-1 >= 0.1]; 0 for a failed job"),
    TableColumn("weight", "float", "the leaderboard's 15-day weight (the sound rule, sums to 1); what goes to the "
                                   "chain under the deployed profile is chain_weights' vector"),
    TableColumn("error", "string", "why the job failed, if it did"),
]

SELECTION_COLUMNS = [
    TableColumn("position", "int", "place in the run's seeded order"),
    TableColumn("uid", "int", "the miner's UID on the subnet"),
    TableColumn("hotkey", "string", "the miner's hotkey, in full"),
    TableColumn("selected", "bool", "whether the run queried this miner"),
    TableColumn("reason", "string", "why the miner was skipped"),
]

METRICS_COLUMNS = [
    TableColumn("variable", "string", "forecast variable"),
    TableColumn("level", "int", "pressure level in hPa (0 for a surface variable)"),
    TableColumn("lead_hours", "int", "hours after the GFS T0"),
    TableColumn("rmse", "float", "latitude-weighted root mean square error"),
    TableColumn("bias", "float", "latitude-weighted mean error"),
    TableColumn("acc", "float", "anomaly correlation coefficient against climatology"),
    TableColumn("skill", "float", "skill score against the reference forecast"),
    TableColumn("clone_distance", "float", "distance to the reference forecast (day-1 only)"),
    TableColumn("clone_penalty", "float", "penalty for copying the reference (day-1 only)"),
    TableColumn("score", "float", "the component's score"),
]

LEAD_SCORE_COLUMNS = [
    TableColumn("lead_hours", "int", "hours after the GFS T0"),
    TableColumn("score", "float", "the lead's score over every variable and level"),
]


def leaderboard_table(rows: Sequence[Mapping[str, Any]], extra: Sequence[TableColumn] = ()) -> MetadataValue:
    """The day's leaderboard: rank, uid, full hotkey, status, scores, weight and error per miner,
    then the ``extra`` columns (the 15-day rank intervals)."""
    return records_table(rows, [*LEADERBOARD_COLUMNS, *extra])


def selection_table(rows: Sequence[Mapping[str, Any]]) -> MetadataValue:
    """The run's miner selection in its seeded order: who was queried, who was skipped and why."""
    return records_table(rows, SELECTION_COLUMNS)


def lead_scores_table(lead_scores: Mapping[int, float]) -> MetadataValue:
    """A miner's ERA5 score per lead, in lead order."""
    return records_table([{"lead_hours": lead, "score": s} for lead, s in sorted(lead_scores.items())],
                         LEAD_SCORE_COLUMNS)


def metrics_table(rows: Sequence[Mapping[str, Any]]) -> MetadataValue:
    """Per (variable, level, lead) metrics of one miner; columns no row has (the clone columns of
    an ERA5 score) are left out."""
    present = {name for row in rows for name in row}
    return records_table(rows, [c for c in METRICS_COLUMNS if c.name in present])


# -- charts ---------------------------------------------------------------------------------------

CHART_SIZE_IN = (6.0, 3.0)
CHART_DPI = 80


def _figure():  # noqa: ANN202
    """A fresh matplotlib figure on the Agg canvas (no pyplot, no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=CHART_SIZE_IN, dpi=CHART_DPI)
    FigureCanvasAgg(figure)
    return figure


def png_markdown(figure, alt: str) -> MetadataValue:  # noqa: ANN001
    """``figure`` as a PNG embedded in markdown (a data URL), which the Dagster UI renders inline."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return _png_data_url(buffer.getvalue(), alt)


def drawn_png_markdown(figure, alt: str) -> MetadataValue:  # noqa: ANN001
    """What ``figure``'s canvas holds now (drawn by the caller, not again) as ``png_markdown``
    shows it: the same pixels, encoded faster (RGB when every pixel is opaque, zlib level 3)."""
    import matplotlib
    import numpy as np
    from PIL import Image, PngImagePlugin

    rgba = np.asarray(figure.canvas.buffer_rgba())
    pixels = np.ascontiguousarray(rgba[..., :3]) if rgba[..., 3].min() == 255 else rgba
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png", compress_level=3, pnginfo=info, dpi=(figure.dpi, figure.dpi))
    return _png_data_url(buffer.getvalue(), alt)


def _png_data_url(png: bytes, alt: str) -> MetadataValue:
    """A PNG as markdown with a data URL."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def score_by_lead_chart(lead_scores: Mapping[int, float], miner_label: str) -> MetadataValue:
    """Line chart of one miner's ERA5 score against lead time (hours after T0); NaN leads are left
    out. A miner with no finite lead score gets a line of text instead of an empty chart.

    Drawn as SVG text, not through matplotlib: every per-miner ERA5 run draws one, and a plain
    polyline costs about a millisecond where a matplotlib figure costs 70 to 130 ms of the run's CPU."""
    points = sorted((int(lead), float(s)) for lead, s in lead_scores.items()
                    if s is not None and math.isfinite(float(s)))
    if not points:
        return MetadataValue.md(f"_no ERA5 lead scores for {miner_label}_")
    leads, scores = [p[0] for p in points], [p[1] for p in points]
    x_ticks = leads if len(points) <= 12 else nice_ticks(min(leads), max(leads))
    chart = SvgChart(x_range=_padded(min(leads), max(leads), 12.0),
                     y_range=_padded(min(0.0, *scores), max(0.0, *scores), 0.5))
    return svg_markdown(chart.render(
        f"ERA5 score against lead: {miner_label}", "lead (hours)", "lead score", x_ticks, points, zero_line=True),
        "score against lead")


def _padded(low: float, high: float, alone: float) -> tuple[float, float]:
    """An axis range around [low, high]: a twentieth of its span more each side, or ``alone`` each
    side when it holds a single value."""
    if high <= low:
        return low - alone, high + alone
    pad = (high - low) * 0.05
    return low - pad, high + pad


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten, at most
    ``most`` of them."""
    span = max(high - low, 1e-12)
    power = 10.0 ** math.floor(math.log10(span / most))
    step = next(power * m for m in (1, 2, 5, 10, 20) if span / (power * m) <= most)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]


class SvgChart:
    """A small line chart as SVG text (480 x 240 px, as the PNG charts at 6 x 3 in and 80 dpi):
    axes, grid, ticks, a title and one series with markers."""

    WIDTH, HEIGHT = 480, 240
    LEFT, RIGHT, TOP, BOTTOM = 58, 14, 26, 40

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]):
        self.x_range, self.y_range = x_range, y_range

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.LEFT + (value - low) / (high - low) * (self.WIDTH - self.LEFT - self.RIGHT)

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.HEIGHT - self.BOTTOM - (value - low) / (high - low) * (self.HEIGHT - self.TOP - self.BOTTOM)

    def render(self, title: str, x_label: str, y_label: str, x_ticks: Sequence[float],
               points: Sequence[tuple[float, float]], zero_line: bool = False) -> str:
        """The SVG document; text is escaped (a label may come from the registry)."""
        left, right = self.LEFT, self.WIDTH - self.RIGHT
        top, bottom = self.TOP, self.HEIGHT - self.BOTTOM
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.WIDTH}" height="{self.HEIGHT}" '
                 f'viewBox="0 0 {self.WIDTH} {self.HEIGHT}" font-family="DejaVu Sans, sans-serif" font-size="10">',
                 f'<rect width="{self.WIDTH}" height="{self.HEIGHT}" fill="white"/>']
        for value in nice_ticks(*self.y_range):
            y = self.y(value)
            parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                         f'<text x="{left - 4}" y="{y + 3.5:.1f}" text-anchor="end">{value:g}</text>')
        for value in x_ticks:
            x = self.x(value)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#ddd"/>'
                         f'<text x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">{value:g}</text>')
        if zero_line and self.y_range[0] <= 0.0 <= self.y_range[1]:
            parts.append(f'<line x1="{left}" x2="{right}" y1="{self.y(0.0):.1f}" y2="{self.y(0.0):.1f}" '
                         f'stroke="grey" stroke-width="0.8"/>')
        parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
                     f'stroke="black" stroke-width="0.8"/>')
        line = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
        parts += [f'<circle cx="{self.x(a):.1f}" cy="{self.y(b):.1f}" r="3" fill="#1f77b4"/>' for a, b in points]
        parts.append(f'<text x="{(left + right) / 2:.0f}" y="{self.HEIGHT - 8}" text-anchor="middle">'
                     f'{xml_escape(x_label)}</text>'
                     f'<text transform="translate(14 {(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
                     f'{xml_escape(y_label)}</text>'
                     f'<text x="{(left + right) / 2:.0f}" y="{top - 9}" text-anchor="middle" font-size="12">'
                     f'{xml_escape(title)}</text></svg>')
        return "".join(parts)


def svg_markdown(svg: str, alt: str) -> MetadataValue:
    """An SVG document as markdown with a data URL (the UI's markdown allows ``data:`` image sources;
    an image's SVG runs no script)."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return MetadataValue.md(f"![{alt}](data:image/svg+xml;base64,{encoded})")


def leaderboard_chart(rows: Sequence[Mapping[str, Any]], top: int = 30) -> MetadataValue:
    """Bar chart of the overall score per miner, best first, each bar labelled by UID (the hotkey's
    first 6 characters when the miner has none); only the ``top`` miners when there are more."""
    scored = [(table_cell(r.get("overall_score"), "float") or 0.0, r) for r in rows]
    ranked = sorted(scored, key=lambda t: -t[0])
    if not ranked:
        return MetadataValue.md("_no miners on the leaderboard_")
    shown = ranked[:top]
    labels = [str(r["uid"]) if r.get("uid") is not None else str(r.get("hotkey", "?"))[:6] for _, r in shown]
    values = [s for s, _ in shown]
    figure = _figure()
    axes = figure.add_subplot()
    axes.bar(range(len(values)), values, color="tab:blue")
    axes.set_xticks(range(len(values)), labels, fontsize=8, rotation=90 if len(values) > 15 else 0)
    axes.set_xlabel("miner UID")
    axes.set_ylabel("overall score")
    more = f" (top {top} of {len(ranked)})" if len(ranked) > top else ""
    axes.set_title(f"overall score per miner{more}", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return png_markdown(figure, "leaderboard")
