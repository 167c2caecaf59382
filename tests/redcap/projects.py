"""Write REDCap project definitions for the local server from metadata rows (other trials, broken ones)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from devservers.redcap_project import DICTIONARY_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "metadata"
STUDY = ROOT / "study"

# A service-written contact instrument for the wellbeing project, with names unlike the trial's.
VISIT_LOG = [
    ("vl_status", "radio", "Visit status", "1, Completed | 2, Missed | 3, Opted out | 4, Withdrawn", ""),
    ("vl_invited", "text", "Invited at", "", "datetime_ymd"),
    ("vl_reminders", "text", "Reminders", "", "integer"),
    ("vl_flag", "yesno", "Red flag", "", ""),
]

WELLBEING_SETTINGS = {
    "REDCAP_QUESTIONNAIRE_INSTRUMENT": "wellbeing_check",
    "REDCAP_CONTACT_INSTRUMENT": "visit_log",
    "REDCAP_ENROLLMENT_EVENT": "screening_arm_1",
    "REDCAP_ENROLLMENT_INSTRUMENT": "registration",
    "REDCAP_ROSTER_FIELDS": json.dumps({"record_id": "study_id", "discharge_date": "reg_date"}),
    "REDCAP_CONTACT_FIELDS": json.dumps(
        {
            "visit_status": "vl_status",
            "invited_at": "vl_invited",
            "reminders_sent": "vl_reminders",
            "red_flag": "vl_flag",
        }
    ),
    "VISIT_PLAN": json.dumps(
        [
            {
                "key": "day_7",
                "event": "day_7_arm_1",
                "target_day": 7,
                "window": [5, 10],
                "reminders": [["open", 0]],
            },
            {
                "key": "day_30",
                "event": "day_30_arm_1",
                "target_day": 30,
                "window": [25, 35],
                "reminders": [["open", 0]],
            },
        ]
    ),
}


def _row(
    name: str, form: str, ftype: str, label: str, choices: str = "", validation: str = ""
) -> dict[str, str]:
    row = {key: "" for _, key in DICTIONARY_COLUMNS}
    row.update(
        field_name=name,
        form_name=form,
        field_type=ftype,
        field_label=label,
        select_choices_or_calculations=choices,
        text_validation_type_or_show_slider_number=validation,
    )
    return row


def write_dictionary(root: Path, rows: list[dict[str, str]]) -> None:
    """REDCap's 18-column data dictionary CSV from export-metadata rows."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "data_dictionary.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([header for header, _ in DICTIONARY_COLUMNS])
        for row in rows:
            writer.writerow([row.get(key, "") for _, key in DICTIONARY_COLUMNS])


def wellbeing_project(root: Path) -> Path:
    """A different longitudinal project: registration at screening, a wellbeing check on day 7 and 30."""
    rows = json.loads((FIXTURES / "wellbeing_project.json").read_text("utf-8"))
    rows = [r for r in rows if r["form_name"] != "staff_notes"]
    rows += [_row(n, "visit_log", t, label, c, v) for n, t, label, c, v in VISIT_LOG]
    write_dictionary(root, rows)
    (root / "events.json").write_text(
        json.dumps(
            [
                {"event_name": "Screening", "arm_num": 1, "unique_event_name": "screening_arm_1"},
                {"event_name": "Day 7", "arm_num": 1, "unique_event_name": "day_7_arm_1", "days_offset": 7},
                {
                    "event_name": "Day 30",
                    "arm_num": 1,
                    "unique_event_name": "day_30_arm_1",
                    "days_offset": 30,
                },
            ]
        )
    )
    mapping = [{"arm_num": 1, "unique_event_name": "screening_arm_1", "form": "registration"}]
    for event in ("day_7_arm_1", "day_30_arm_1"):
        mapping += [
            {"arm_num": 1, "unique_event_name": event, "form": "wellbeing_check"},
            {"arm_num": 1, "unique_event_name": event, "form": "visit_log"},
        ]
    (root / "instrument_event_mapping.json").write_text(json.dumps(mapping))
    return root


def study_variant(root: Path, edit) -> Path:
    """A copy of the trial's project whose data dictionary rows went through `edit(rows) -> rows`."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("events.csv", "instrument_event_mapping.csv", "arms.csv", "project.json"):
        shutil.copy(STUDY / name, root / name)
    with (STUDY / "data_dictionary.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = [
            {key: value for (_, key), value in zip(DICTIONARY_COLUMNS, line, strict=True)} for line in reader
        ]
    write_dictionary(root, edit(rows))
    return root
