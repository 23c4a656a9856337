# cython: language_level=3, boundscheck=False, wraparound=False
"""The fast flatteners of ``ledbelly.parsers.flatten``, compiled.

Each does what its pure-Python twin does, key for key, with the same memo of joined
keys; where the twin raises ``_Collided`` (a key about to be stored twice), these return
True and the caller takes the same slow path.
"""

from cpython.object cimport PyObject
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem, PyDict_Contains


cdef class Flattener:
    """Holds the twin's memo stores and key functions, so both share one memo."""

    cdef dict _canvas_store
    cdef dict _caliper_store
    cdef object _canvas_key
    cdef object _caliper_segment
    cdef object _joined_keys
    cdef object _scalar_text

    def __init__(self, canvas_store, caliper_store, canvas_key, caliper_segment, joined_keys,
                 scalar_text):
        self._canvas_store = canvas_store
        self._caliper_store = caliper_store
        self._canvas_key = canvas_key
        self._caliper_segment = caliper_segment
        self._joined_keys = joined_keys
        self._scalar_text = scalar_text

    def canvas(self, dict obj, str prefix, dict out, keep):
        """True if two payload paths met at one key (nothing is undone: the caller
        starts again on the slow path)."""
        return self._canvas(obj, prefix, out, keep)

    cdef bint _canvas(self, dict obj, str prefix, dict out, object keep) except -1:
        cdef dict joined = self._joined_keys(self._canvas_store, prefix)
        cdef PyObject* found
        cdef object key
        for k, v in obj.items():
            found = PyDict_GetItem(joined, k)
            if found == NULL:
                key = prefix + self._canvas_key(k)
                PyDict_SetItem(joined, k, key)
            else:
                key = <object>found
            if type(v) is dict and key not in keep:
                if self._canvas(<dict>v, key + "_", out, keep):
                    return True
            elif PyDict_Contains(out, key):
                return True
            else:
                PyDict_SetItem(out, key, v)
        return False

    def caliper(self, dict obj, str prefix, dict out, keep):
        """As ``canvas``, for a Caliper event."""
        return self._caliper(obj, prefix, out, keep)

    cdef bint _caliper(self, dict obj, str prefix, dict out, object keep) except -1:
        cdef dict joined = self._joined_keys(self._caliper_store, prefix)
        cdef PyObject* found
        cdef object key, seg, slot
        for k, v in obj.items():
            found = PyDict_GetItem(joined, k)
            if found == NULL:
                seg = self._caliper_segment(k)
                key = prefix + "_" + seg if prefix and seg else seg or prefix
                PyDict_SetItem(joined, k, key)
            else:
                key = <object>found
            if type(v) is dict and key not in keep:
                if self._caliper(<dict>v, key, out, keep):
                    return True
                continue
            if type(v) is list and key not in keep and _all_scalars(<list>v):
                v = self._joined_scalars(<list>v)
            slot = key or "_"
            if PyDict_Contains(out, slot):
                return True
            PyDict_SetItem(out, slot, v)
        return False

    cdef object _joined_scalars(self, list v):
        parts = []
        for x in v:
            parts.append("" if x is None else self._scalar_text(x))
        return ",".join(parts)


cdef inline bint _all_scalars(list v):
    for x in v:
        if isinstance(x, (dict, list)):
            return False
    return True
