"""The one did-you-mean helper that every "unknown option" message goes through."""

from __future__ import annotations

import pytest

from autocontour.errors import (
    UnknownOptionError,
    closest_choice,
    did_you_mean,
    look_up_option,
    normalise_name,
)


def test_did_you_mean_names_the_closest_choice_and_lists_all() -> None:
    assert did_you_mean("unknown loss 'dicec'", "dicec", ("ce", "dice", "dicece")) == (
        "unknown loss 'dicec'; did you mean 'dicece'? (choices: ce, dice, dicece)")
    assert did_you_mean("unknown x 'zzz'", "zzz", ["alpha", "beta"]) == (
        "unknown x 'zzz' (choices: alpha, beta)")


def test_aliases_are_suggested_as_the_choice_they_stand_for() -> None:
    aliases = {"prostate": "pelvis"}
    assert closest_choice("prostat", ["head-neck", "pelvis"], aliases) == "pelvis"
    assert closest_choice("prostat", ["head-neck", "pelvis"]) is None
    message = did_you_mean("unknown site 'prostat'", "prostat", ["pelvis"], aliases=aliases)
    assert message == "unknown site 'prostat'; did you mean 'pelvis'? (choices: pelvis)"


def test_look_up_option_normalises_and_resolves_aliases() -> None:
    choices = ("head-neck", "pelvis")
    assert look_up_option("site", " Head_Neck", choices, normalise=normalise_name) == "head-neck"
    assert look_up_option("site", "HN", choices, normalise=normalise_name,
                          aliases={"hn": "head-neck"}) == "head-neck"
    assert look_up_option("mode", "pelvis", choices) == "pelvis"
    with pytest.raises(UnknownOptionError, match=r"^unknown mode 'Pelvis'; did you mean 'pelvis'\?"
                                                 r" \(choices: head-neck, pelvis\)$"):
        look_up_option("mode", "Pelvis", choices)  # no normalisation: exact match only
