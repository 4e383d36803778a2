"""In-memory object storage with a global resourceVersion and an event history.

The history keeps, per write, the new and the previous object, so the state at any
resourceVersion newer than the compaction point can be rebuilt (consistent paging, Exact
lists) and watches can resume from any such resourceVersion.
"""

import bisect
import copy
import threading


class Expired(Exception):
    def __init__(self, requested, oldest):
        super().__init__('too old resource version: %d (%d)' % (requested, oldest))
        self.requested = requested
        self.oldest = oldest


class Event:
    __slots__ = ('rv', 'storage', 'ns', 'name', 'type', 'obj', 'prev')

    def __init__(self, rv, storage, ns, name, etype, obj, prev):
        self.rv = rv
        self.storage = storage
        self.ns = ns
        self.name = name
        self.type = etype
        self.obj = obj
        self.prev = prev


class Store:
    FIRST_RV = 1000

    def __init__(self, history_limit=20000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = self.FIRST_RV
        self.objects = {}          # storage -> {(ns, name): obj}
        self.uids = {}             # uid -> (storage, ns, name)
        self.history = []
        self.history_rvs = []
        self.history_limit = history_limit
        self.compacted_rv = self.FIRST_RV   # states at rv >= compacted_rv can be rebuilt
        self.watch_epoch = 0

    # ------------------------------------------------------------------ reads
    def get(self, storage, ns, name):
        with self.lock:
            o = self.objects.get(storage, {}).get((ns or '', name))
            return copy.deepcopy(o) if o is not None else None

    def exists_uid(self, uid):
        with self.lock:
            return uid in self.uids

    def all_objects(self):
        with self.lock:
            out = []
            for storage, objs in self.objects.items():
                for (ns, name), o in objs.items():
                    out.append((storage, ns, name, o))
            return out

    def list(self, storage, ns=None, at_rv=None):
        """Sorted [(key, obj)] at `at_rv` (None: now) and the list resourceVersion."""
        with self.lock:
            cur = dict(self.objects.get(storage, {}))
            rv = self.rv
            if at_rv is not None and at_rv < self.rv:
                if at_rv < self.compacted_rv:
                    raise Expired(at_rv, self.compacted_rv)
                i = bisect.bisect_right(self.history_rvs, at_rv)
                for ev in reversed(self.history[i:]):
                    if ev.storage != storage:
                        continue
                    key = (ev.ns, ev.name)
                    if ev.type == 'ADDED':
                        cur.pop(key, None)
                    else:
                        cur[key] = ev.prev
                rv = at_rv
            items = sorted(((k, v) for k, v in cur.items() if ns is None or k[0] == ns),
                           key=lambda kv: kv[0])
            return [(k, copy.deepcopy(v)) for k, v in items], rv

    def events_after(self, rv, storage):
        """Events with resourceVersion > rv for storage. Raises Expired if rv was compacted."""
        with self.lock:
            if rv < self.compacted_rv:
                raise Expired(rv, self.compacted_rv)
            i = bisect.bisect_right(self.history_rvs, rv)
            return [e for e in self.history[i:] if e.storage == storage]

    # ------------------------------------------------------------------ writes
    def _record(self, ev):
        self.history.append(ev)
        self.history_rvs.append(ev.rv)
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.compacted_rv = self.history[drop - 1].rv
            del self.history[:drop]
            del self.history_rvs[:drop]
        self.cond.notify_all()

    def put(self, storage, ns, name, obj):
        """Create or replace; sets metadata.resourceVersion. Returns a copy of what was stored."""
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault('metadata', {})['resourceVersion'] = str(self.rv)
            objs = self.objects.setdefault(storage, {})
            key = (ns or '', name)
            prev = objs.get(key)
            objs[key] = obj
            uid = obj['metadata'].get('uid')
            if uid:
                self.uids[uid] = (storage, key[0], name)
            self._record(Event(self.rv, storage, key[0], name, 'MODIFIED' if prev else 'ADDED', obj, prev))
            return copy.deepcopy(obj)

    def delete(self, storage, ns, name):
        with self.lock:
            objs = self.objects.get(storage, {})
            key = (ns or '', name)
            prev = objs.pop(key, None)
            if prev is None:
                return None
            self.rv += 1
            gone = copy.deepcopy(prev)
            gone['metadata']['resourceVersion'] = str(self.rv)
            uid = prev['metadata'].get('uid')
            if uid:
                self.uids.pop(uid, None)
            self._record(Event(self.rv, storage, key[0], name, 'DELETED', gone, prev))
            return copy.deepcopy(gone)

    def drop_storage(self, storage):
        with self.lock:
            names = list(self.objects.get(storage, {}).keys())
        return [self.delete(storage, ns, name) for ns, name in names]

    def compact(self):
        """Forget all history: every older resourceVersion now gives 410."""
        with self.lock:
            # bump the revision too, so even the newest resourceVersion handed out expires
            self.rv += 1
            self.compacted_rv = self.rv
            self.history = []
            self.history_rvs = []
            self.cond.notify_all()

    def drop_watches(self):
        with self.lock:
            self.watch_epoch += 1
            self.cond.notify_all()
