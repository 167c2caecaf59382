"""The study's defaults for settings given as JSON: the visit plan, the red-flag rules, the SMS deny words.

Re-exported by `config`, which reads the environment over them.
"""

from __future__ import annotations

from typing import Any

DEFAULT_VISIT_PLAN: list[dict[str, Any]] = [
    {
        "key": "week_4",
        "event": "week_4_arm_1",
        "target_day": 28,
        "window": [25, 35],
        "reminders": [["open", 0], ["open", 3], ["close", -2]],
    },
    {
        "key": "month_6",
        "event": "month_6_arm_1",
        "target_day": 182,
        "window": [168, 196],
        "reminders": [["open", 0], ["open", 3], ["close", -2]],
    },
]

DEFAULT_RED_FLAG_RULES: list[dict[str, Any]] = [
    {"field": "fu_spo2", "op": "<=", "value": 93, "reason": "home SpO2 at or below 93%"},
    {"field": "fu_mmrc", "op": "==", "value": "4", "reason": "breathlessness grade 4"},
    {"field": "fu_ae___3", "op": "==", "value": "1", "reason": "chest pain reported"},
    {"field": "fu_readmitted", "op": "==", "value": "1", "reason": "readmitted to hospital"},
]

# Words no SMS may carry (a condition, a treatment, an arm): see app.sms.privacy for how they match.
DEFAULT_SMS_DENY_WORDS: list[str] = [
    "randomisation", "randomization", "randomised", "randomized", "placebo", "stem", "stem cell",
    "MSC", "mesenchymal", "COVID", "coronavirus", "SARS", "trial arm",
    "随机", "安慰剂", "干细胞", "间充质", "新冠", "冠状病毒",
]  # fmt: skip
