"""Revision 0002 creates the comparison tables on top of 0001 and drops them again on downgrade."""

from alembic import command
from sqlalchemy import inspect

from studyapp.db.session import alembic_config, make_engine, upgrade

TABLES = {"comparison_sets", "comparison_pairs", "comparison_assignments", "comparison_judgements",
          "comparison_comments", "comparison_submissions"}


def test_upgrade_downgrade_0002(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert TABLES <= set(inspect(make_engine(url)).get_table_names())
    checks = {c["name"] for c in inspect(make_engine(url)).get_check_constraints("comparison_comments")}
    assert checks == {"ck_comparison_comments_score_1_2_4_5", "ck_comparison_comments_side_code"}
    command.downgrade(alembic_config(url), "0001")
    names = set(inspect(make_engine(url)).get_table_names())
    assert not TABLES & names and "cases" in names
    command.upgrade(alembic_config(url), "head")
    assert TABLES <= set(inspect(make_engine(url)).get_table_names())
