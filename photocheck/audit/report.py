"""A self-contained HTML report of the audit, for sharing offline (e-mail, USB stick).

Everything is inside the one file: styles, SVG drawings and the photo previews as
``data:`` URIs. Building it decodes each involved photo once; a progress bar on
stderr shows how far it got.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from jinja2 import Environment, select_autoescape
from markupsafe import Markup
from PIL import Image
from tqdm import tqdm

from .findings import KIND_LABELS, AuditFinding
from .match_picture import has_match_points, match_caption, render_match_picture
from .previews import make_preview
from .progress import ProgressTable
from .records import CHINA_TZ, PhotoRecord, VillageRecord
from .sketch import SketchPoint, position_sketch, progress_bars

__all__ = ["build_report", "format_when"]

_TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>核验审计报告 Audit report {{ stamp }}</title>
<style>
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td.l{text-align:left}.finding{border:1px solid #ccc;margin:1em 0;padding:.6em}
.high{border-left:6px solid #c00}.medium{border-left:6px solid #e0a800}.low{border-left:6px solid #999}
.photos{display:flex;flex-wrap:wrap;gap:10px}.photos figure{margin:0;font-size:12px;max-width:330px}
.photos img{max-width:320px;max-height:320px;display:block}small{color:#555}
</style></head><body>
<h1>农村住房安全核验 · 审计报告 <small>Audit report</small></h1>
<p>截至 As of {{ stamp }}（北京时间）· 发现问题 {{ findings|length }} 条 findings</p>
<h2>进度 Progress</h2>
{{ bars }}
<table><tr><th>排名</th><th class="l">乡镇 Town</th><th>总户数</th><th>已通过</th><th>待审核</th>
<th>待重拍</th><th>未上传</th><th>完成率</th><th>较昨日</th></tr>
{% for r in progress.towns %}<tr><td>{{ r.rank }}</td><td class="l">{{ r.town }}</td>
<td>{{ r.total }}</td><td>{{ r.accepted }}</td><td>{{ r.review }}</td><td>{{ r.retake }}</td>
<td>{{ r.no_photo }}</td><td>{{ '%.1f'|format(r.pct_done) }}%</td>
<td>{{ '%+.1f'|format(r.change_pct) }}</td></tr>{% endfor %}
</table>
<h2>问题清单 Findings</h2>
{% for f in items %}<div class="finding {{ f.finding.severity }}" id="{{ f.finding.id }}">
<b>{{ f.label_zh }}</b> <small>{{ f.label_en }} · {{ f.finding.severity }} · {{ f.finding.id }}</small>
<p>{{ f.finding.summary_zh }}<br><small>{{ f.finding.summary_en }}</small></p>
<div class="photos">{% for p in f.photos %}<figure>
{% if p.uri %}<img src="{{ p.uri }}" alt="{{ p.record.household_id }}">{% else %}<i>无法显示</i>{% endif %}
<figcaption>{{ loop.index }}. {{ p.record.household_id }} {{ p.record.head_name }} · {{ p.record.village_name }}<br>
{{ p.record.taken_at|when }} · {{ p.record.verifier }}</figcaption></figure>{% endfor %}
{{ f.sketch }}</div>
{% for m in f.matches %}<figure class="match"><img src="{{ m.uri }}" alt="match" style="max-width:100%">
<figcaption>{{ m.zh }}<br><small>{{ m.en }}</small></figcaption></figure>{% endfor %}
</div>{% endfor %}
</body></html>"""  # noqa: E501


def _preview_rgb(data: bytes | None) -> np.ndarray | None:
    """The upright preview of a photo as RGB pixels, or None (undecodable, gone)."""
    preview = make_preview(data, size=480) if data else None
    return None if preview is None else np.asarray(Image.open(io.BytesIO(preview)).convert("RGB"))


def format_when(value: dt.datetime | None) -> str:
    """Local capture time to the second; an explicit note when there is none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "无拍摄时间 no capture time"


def build_report(
    findings: Sequence[AuditFinding],
    progress: ProgressTable,
    photos: Mapping[str, PhotoRecord],
    villages: Mapping[str, VillageRecord],
    load_photo: Callable[[str], bytes | None],
    *,
    show_progress: bool = True,
    max_photos_per_finding: int = 6,
) -> str:
    """The report as one HTML string; ``load_photo(photo_id)`` gives the original bytes."""
    cache: dict[str, str | None] = {}

    def uri(pid: str) -> str | None:
        if pid not in cache:
            data = load_photo(pid)
            preview = make_preview(data) if data else None
            cache[pid] = (
                "data:image/jpeg;base64," + base64.b64encode(preview).decode("ascii")
                if preview
                else None
            )
        return cache[pid]

    def picture(pair: Mapping[str, Any]) -> dict[str, str] | None:
        """The match picture of a same-scene pair, from the previews (``match_picture``)."""
        evidence = pair.get("evidence") or {}
        if pair.get("relation") != "same_scene" or not has_match_points(evidence):
            return None
        a, b = str(pair["a"]), str(pair["b"])
        images = [_preview_rgb(load_photo(pid)) for pid in (a, b)]
        if images[0] is None or images[1] is None:
            return None
        jpeg = render_match_picture(images[0], images[1], evidence)
        names = [photos[p].household_id if p in photos else p for p in (a, b)]
        zh, en = match_caption(names[0], names[1], evidence)
        return {
            "uri": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(),
            "zh": zh,
            "en": en,
        }

    items = []
    bar = tqdm(findings, desc="report", unit="finding", file=sys.stderr, disable=not show_progress)
    for f in bar:
        records = [photos[p] for p in f.photo_ids if p in photos][:max_photos_per_finding]
        village = villages.get(f.village_ids[0]) if f.village_ids else None
        centre = (
            (village.centre_lat, village.centre_lon)
            if village and village.centre_lat is not None and village.centre_lon is not None
            else None
        )
        points = [
            SketchPoint(pos[0], pos[1], r.household_id)
            for r in records
            if (pos := r.position) is not None
        ]
        zh, en = KIND_LABELS[f.kind]
        items.append(
            {
                "finding": f,
                "label_zh": zh,
                "label_en": en,
                "photos": [{"record": r, "uri": uri(r.photo_id)} for r in records],
                "sketch": Markup(position_sketch(points, centre)) if points else "",
                "matches": [
                    m for p in f.evidence.get("pairs") or [] if (m := picture(p)) is not None
                ],
            }
        )
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["when"] = format_when
    stamp = progress.as_of.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return env.from_string(_TEMPLATE).render(
        stamp=stamp,
        findings=findings,
        items=items,
        progress=progress,
        bars=Markup(progress_bars(progress.towns)),
    )
