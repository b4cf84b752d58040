"""Self-contained HTML reports: one file, opened from disk, no server, no network.

`page` lays out a report (inline CSS, sections, tables); `charts` renders Altair charts to
static SVG with vl-convert, so the file holds no script at all. The report builders (an
experiment, a monitoring window, a calibration) gather their numbers from the warehouse
and hand them to these two."""
