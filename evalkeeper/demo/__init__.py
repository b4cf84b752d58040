"""The demo: what `evalkeeper demo` runs on the bundled sample data.

- `agent`: a deterministic, rule-based appointment-scheduling agent in two releases, the
  demo's target (`evalkeeper.demo.agent:v1`, `evalkeeper.demo.agent:v2`).
- `monitor`: the monitoring act, the sample traffic's deploy and its window, tick by tick.
- `calibration`: the calibration act, two judges measured against bundled human labels.
- `reports`: the HTML reports of the acts (experiment, window, calibration), named last.

The acts are imported by the CLI's `demo` command on demand; nothing else in the core
imports this package.
"""
