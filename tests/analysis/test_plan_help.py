"""``python -m analysis plan --help`` describes the command in complete sentences."""

from analysis.plan import build_parser


def test_plan_help_description_is_a_complete_sentence():
    description = build_parser().description
    assert description.startswith("Power and sample size of a reader study (paper section 2.4:")
    assert description.endswith("Fig. 4c: blinded preference rates), by simulation."), description
