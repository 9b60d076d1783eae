"""The platforms chart's text never collides: tick labels, platform names, bar labels.

The chart is drawn at whatever width the screen gives, so its geometry is checked at the two
widths it is laid out for (`timeline.WIDE`, every desktop; `timeline.NARROW`, every phone) and
at wider ones: what is apart at the narrowest width of a class must stay apart above it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from core.settings import settings_from_mapping
from voexec.ui import broker_charts, timeline

NOW = datetime(2026, 9, 1, 10, 17, tzinfo=UTC)
DESKTOPS = (timeline.WIDE, 703, 1142, 2400)
PHONES = (timeline.NARROW, 309)
LONG = "observatory-compute-cluster-number-{:02d}-west-region-with-a-long-name"


def visible_boxes(
    ticks: list[timeline.Tick], width: float, phone: bool
) -> list[tuple[float, float]]:
    shown = [t for t in ticks if t.label and not (phone and t.sparse)]
    return sorted(t.box(width) for t in shown)


def assert_apart(boxes: list[tuple[float, float]], width: float) -> None:
    for left, right in boxes:
        assert 0 <= left <= right <= width
    for (_, right), (left, _) in pairwise(boxes):
        assert right + timeline.TEXT_GAP <= left, boxes


@given(
    minutes=st.integers(10, 60 * 24 * 9),
    most=st.integers(2, 40),
    offset=st.integers(0, 60 * 24),
)
def test_tick_labels_never_touch_on_any_screen(minutes, most, offset):
    start = NOW + timedelta(minutes=offset, seconds=13)
    ticks = timeline.ticks(start, start + timedelta(minutes=minutes), most)
    for width in DESKTOPS:
        assert_apart(visible_boxes(ticks, width, phone=False), width)
    for width in PHONES:
        assert_apart(visible_boxes(ticks, width, phone=True), width)
    # Thinning drops labels, never all of them: the first tick's shows on a phone too.
    assert not ticks or (ticks[0].label and not ticks[0].sparse)


def test_dense_ticks_are_thinned_rather_than_overlapping():
    # 61 hours asked with up to 40 ticks: hourly ticks would need 90 px labels 10 px apart.
    start = datetime(2026, 9, 1, 22, 30, tzinfo=UTC)
    ticks = timeline.ticks(start, start + timedelta(hours=61), 40)
    steps = {round((b.x - a.x) * 61 * 60) for a, b in pairwise(ticks)}
    assert min(steps) >= 120  # minutes: no longer every hour
    assert_apart(visible_boxes(ticks, timeline.WIDE, phone=False), timeline.WIDE)
    assert [t for t in ticks if t.major]  # midnight is still marked


def many_platforms(count: int, name: str = LONG) -> list[broker_charts.PlatformView]:
    settings = settings_from_mapping(
        {
            "broker": {
                "platforms": [
                    {"name": name.format(i), "capacity": {"cores": 1024 + i, "memory": 4096.5}}
                    for i in range(count)
                ]
            }
        }
    )
    views = []
    for index, platform in enumerate(settings.broker.platforms):
        bookings = [
            {
                "session": f"s{index}-{k}",
                "phase": ("OFFERED", "ACCEPTED", "RUNNING")[k % 3],
                "start": (NOW + timedelta(minutes=7 * k)).isoformat(),
                "end": (NOW + timedelta(minutes=7 * k + 20 + 90 * k)).isoformat(),
                "cores": 8 * (k + 1),
                "memory": 16.0,
                "gpus": k % 2,
            }
            for k in range(index % 5)
        ]
        views.append(broker_charts.platform_view(platform, bookings))
    return views


def test_long_platform_names_fit_their_line_and_keep_their_end():
    chart = broker_charts.platforms_chart(many_platforms(12), NOW, hours=48)
    assert len(chart.rows) == 12
    for index, row in enumerate(chart.rows):
        name = LONG.format(index)
        wide = timeline.text_width(row.label, timeline.ROW_TEXT, bold=True)
        wide += timeline.text_width(" " + row.note, timeline.ROW_TEXT)
        assert timeline.ROW_INSET + wide <= timeline.WIDE
        phone = timeline.text_width(row.short_label, timeline.ROW_TEXT, bold=True)
        assert timeline.ROW_INSET + phone <= timeline.NARROW
        assert row.short_label.endswith(name[-4:])  # the end of a name tells platforms apart
        assert timeline.ELLIPSIS in row.short_label
        assert row.title.startswith(name)  # the tooltip holds the whole name
        assert row.note in row.title
    labels = [row.short_label for row in chart.rows]
    assert len(set(labels)) == len(labels) or all(row.title for row in chart.rows)


def test_short_names_are_left_whole_without_a_tooltip():
    chart = broker_charts.platforms_chart(many_platforms(3, "hpc-{}"), NOW, hours=24)
    assert [row.label for row in chart.rows] == ["hpc-0", "hpc-1", "hpc-2"]
    assert [row.short_label for row in chart.rows] == ["hpc-0", "hpc-1", "hpc-2"]
    assert {row.title for row in chart.rows} == {""}
    assert all(row.note for row in chart.rows)


def test_rows_and_bars_never_share_pixels():
    chart = broker_charts.platforms_chart(many_platforms(40), NOW, hours=6)
    boxes = []  # (top, bottom) of each row's label line and of each lane
    for row in chart.rows:
        boxes.append((row.y, row.y + timeline.LABEL_HEIGHT))
        lanes = {(bar.y, bar.y + bar.height) for bar in row.bars}
        boxes.extend(lanes)
        for bar in row.bars:
            assert row.y + timeline.LABEL_HEIGHT <= bar.y
            assert bar.y + bar.height <= row.y + row.height
    boxes.sort()
    for (_, bottom), (top, _) in pairwise(boxes):
        assert bottom <= top
    assert chart.rows[0].y >= timeline.AXIS_HEIGHT  # below the tick labels
    assert chart.height >= chart.rows[-1].y + chart.rows[-1].height


def test_bar_text_fits_inside_its_bar():
    chart = broker_charts.platforms_chart(many_platforms(12), NOW, hours=24)
    texts = [bar for row in chart.rows for bar in row.bars if bar.span.label]
    assert texts
    for bar in texts:
        for text, width in ((bar.text, timeline.WIDE), (bar.short_text, timeline.NARROW)):
            room = bar.width * width - 2 * timeline.BAR_INSET
            assert timeline.text_width(text, timeline.BAR_TEXT, bold=True) <= max(room, 0)
    # Short bars lose trailing parts first, then their text.
    assert any(bar.text and bar.text != bar.span.label for bar in texts)
    assert all(not bar.text or bar.span.label.startswith(bar.text.rstrip("…")) for bar in texts)


@given(st.text(min_size=0, max_size=80), st.floats(0, 900), st.booleans(), st.booleans())
def test_fitted_text_is_never_wider_than_asked(text, width, bold, middle):
    fitted = timeline.fit(text, width, 13, bold=bold, middle=middle)
    assert timeline.text_width(fitted, 13, bold=bold) <= width
    if timeline.text_width(text, 13, bold=bold) <= width:
        assert fitted == text
