"""Model cards: rendered only from what a run recorded (the real-run card is checked in test_cli)."""

import pytest

from tinybert_hf.hub.model_card import template_path, write_model_card


def test_a_card_needs_the_runs_record(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has no tinybert_results.json"):
        write_model_card(tmp_path)
    assert not (tmp_path / "README.md").exists()


def test_the_template_ships_in_model_cards():
    text = template_path().read_text()
    assert template_path().resolve().parent.name == "model_cards"  # the package's templates/ links to it
    for field in ("{{ card_data }}", "{{ results_rows }}", "{{ stage_lines }}", "{{ family }}", "{{ load_section }}"):
        assert field in text
