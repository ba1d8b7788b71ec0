import pytest

from obliviate.errors import ObliviateError
from obliviate.registry import METHODS, Registry, register_method


def make_registry() -> Registry:
    reg = Registry("method")
    for name in ("gradient_ascent", "gradient_difference", "npo"):
        reg.register(name)(type(name, (), {}))
    return reg


def test_register_get_names_contains():
    reg = Registry("method")

    @reg.register("npo")
    class NPO:
        pass

    assert reg.get("npo") is NPO
    assert "npo" in reg and "kl" not in reg
    assert reg.names() == ["npo"]
    assert list(reg) == ["npo"] and len(reg) == 1


def test_decorator_returns_the_class_unchanged():
    reg = Registry("method")

    class A:
        pass

    assert reg.register("a")(A) is A


def test_names_are_sorted():
    assert make_registry().names() == ["gradient_ascent", "gradient_difference", "npo"]


def test_duplicate_name_raises_naming_both():
    reg = Registry("method")

    @reg.register("npo")
    class First:
        pass

    class Second:
        pass

    with pytest.raises(ObliviateError, match="duplicate method name 'npo'") as info:
        reg.register("npo")(Second)
    assert "First" in str(info.value) and "Second" in str(info.value)
    assert reg.get("npo") is First


def test_registering_the_same_object_twice_is_harmless():
    reg = Registry("method")

    class A:
        pass

    reg.register("a")(A)
    reg.register("a")(A)
    assert reg.get("a") is A


def test_unknown_name_suggests_closest_and_lists_known():
    with pytest.raises(ObliviateError) as info:
        make_registry().get("gradient_acent")
    assert str(info.value) == ("unknown method 'gradient_acent'; did you mean 'gradient_ascent'? "
                               "known: gradient_ascent, gradient_difference, npo")


def test_unknown_name_without_close_match_still_lists_known():
    with pytest.raises(ObliviateError) as info:
        make_registry().get("zzzz")
    assert "did you mean" not in str(info.value)
    assert "known: gradient_ascent, gradient_difference, npo" in str(info.value)


def test_unknown_name_in_empty_registry():
    with pytest.raises(ObliviateError, match="no attacks are registered"):
        Registry("attack").get("relearn")


def test_register_without_a_name_is_a_clear_error():
    reg = Registry("method")
    with pytest.raises(TypeError, match="register_method"):

        @reg.register
        class A:
            pass


def test_global_method_registry():
    assert METHODS.kind == "method"
    assert register_method == METHODS.register
