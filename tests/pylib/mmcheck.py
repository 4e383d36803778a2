"""The one helper of maskmesh's Python checkers and test scripts (hack/check-*.py,
tests/integration/test_*, e2e/local.py): counted checks that end with the line
`N passed, N failed` (hack/run-tests.sh and hack/check-chart.sh add those counts up), and the
loader for the concatenated JSON documents kubectl, helm and our tools print, and the
label-selector matcher (the API stand-in's, so tests and stand-in agree).

Import it with the repository's top on sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "pylib"))
    from mmcheck import check, load, summary
"""
import json
import os
import sys

passed = 0
failed = 0


def check(ok, what, detail=None):
    """Counts one check; prints failures (and, with verbose(), passes). Returns bool(ok)."""
    global passed, failed
    if ok:
        passed += 1
        if _verbose:
            print("ok   " + what, flush=True)
    else:
        failed += 1
        print("FAIL: " + what + ("" if detail is None else ": " + str(detail)), flush=True)
    return bool(ok)


_verbose = False


def verbose(on=True):
    """Print every check, not only failures (scripts read by a person as they run)."""
    global _verbose
    _verbose = on


def summary():
    """Prints `N passed, N failed`; the exit code: 0 when something passed and nothing failed."""
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


def load(text, flatten_lists=False):
    """Every JSON value in text, one after the other (kubectl -o json of several objects,
    helm template through kubectl, NDJSON). With flatten_lists a `kind: List` contributes
    its items instead of itself."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        if flatten_lists and isinstance(obj, dict) and obj.get("kind") == "List":
            out.extend(obj.get("items", []))
        else:
            out.append(obj)


def selector_matches(sel, labels):
    """Kubernetes LabelSelector semantics (None selects everything, as in webhooks), by the
    one matcher the API stand-in uses (e2e/apiserver/standin/selectors.py)."""
    return _labelselector(sel)(labels)


def _labelselector(sel):
    global _from_labelselector
    if _from_labelselector is None:
        sys.path.insert(0, os.path.join(_TOP, "e2e", "apiserver"))
        from standin.selectors import selector_from_labelselector
        _from_labelselector = selector_from_labelselector
    return _from_labelselector(sel)


_from_labelselector = None
_TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
