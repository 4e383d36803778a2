"""The in-memory store: objects by resource, the global resourceVersion, the event history and open
watchers.
"""
import queue
import threading

from . import wire


class Watcher:
    def __init__(self, gp, ns, lsel, fsel):
        self.gp = gp
        self.ns = ns
        self.lsel = lsel
        self.fsel = fsel
        self.q = queue.Queue()
        self.dropped = False

    def matches(self, obj):
        if obj is None:
            return False
        md = obj.get("metadata", {})
        if self.ns is not None and md.get("namespace") != self.ns:
            return False
        return self.lsel.matches(md.get("labels")) and self.fsel.matches(obj)

    def offer(self, etype, obj, old):
        new_m = self.matches(obj)
        old_m = self.matches(old)
        if etype == "ADDED":
            if new_m:
                self.q.put(("ADDED", obj))
        elif etype == "DELETED":
            if new_m:
                self.q.put(("DELETED", obj))
        else:
            if new_m and old_m:
                self.q.put(("MODIFIED", obj))
            elif new_m:
                self.q.put(("ADDED", obj))
            elif old_m:
                self.q.put(("DELETED", obj))


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.rv = 1000
        self.objects = {}  # (group, plural) -> {(ns, name): obj}
        self.history = []  # (rv, gp, etype, obj, old)
        self.oldest = 0  # watches may resume from any rv >= oldest
        self.watchers = set()
        self.resources = {}  # (group, version, plural) -> Res
        self.group_order = []

    def store(self, gp):
        return self.objects.setdefault(gp, {})

    def get(self, res, ns, name):
        return self.store(res.gp).get((ns or "", name))

    def commit(self, res, etype, obj, old):
        """Record a change; obj must not be mutated afterwards. Caller holds the lock."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if etype == "DELETED":
            self.store(res.gp).pop(key, None)
        else:
            self.store(res.gp)[key] = obj
        self.history.append((self.rv, res.gp, etype, obj, old))
        if len(self.history) > wire.HISTORY_MAX:
            drop = len(self.history) - wire.HISTORY_MAX
            self.oldest = self.history[drop - 1][0]
            del self.history[:drop]
        for w in list(self.watchers):
            if w.gp == res.gp:
                w.offer(etype, obj, old)
        return obj

    def compact(self):
        with self.lock:
            self.rv += 1  # like an etcd compaction: every revision handed out before it is gone
            self.history = []
            self.oldest = self.rv

    def all_uids(self):
        return {o["metadata"].get("uid") for s in self.objects.values() for o in s.values()}
