# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The row builder of ``ledbelly.transform.rows``, compiled: one typed pass over a
table's columns. It does what ``rows._compile``'s generated code does, value for value:
common values (ASCII text that fits, digit-string ids, integers in range) inline, and
everything else through the same ``_convert`` (coerce, trim, report)."""

from cpython.long cimport PyLong_FromLongLong, PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from libc.string cimport memchr, memcmp
from cpython.datetime cimport import_datetime, datetime_new

import_datetime()

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    int PyUnicode_KIND(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    dict _PyDict_NewPresized(Py_ssize_t size)

# Slot kinds, as rows.kernel_spec names them.
cdef enum:
    GENERIC = 0
    TEXT = 1
    INT32 = 2
    INT64 = 3
    REUSE = 4
    DATETIME = 5
    URN = 6


cdef class _Slot:
    cdef object column
    cdef object source
    cdef object slot
    cdef object coerce
    cdef int kind
    cdef bint in_chars  # the database counts the column's size in characters
    cdef Py_ssize_t size


cdef inline bint _clean_ascii(object v, Py_ssize_t size):
    """An ASCII str without NUL of at most ``size`` characters (size < 0: any length)."""
    if type(v) is not str or not PyUnicode_IS_ASCII(v):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v)
    if size >= 0 and n > size:
        return False
    return memchr(PyUnicode_DATA(v), 0, n) == NULL


cdef bint _clean_wide(object v, Py_ssize_t size):
    """A non-ASCII str without NUL or lone surrogates of at most ``size`` characters:
    what ``text_of`` and a fit counted in characters leave as it is."""
    if type(v) is not str:
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v), i
    if size >= 0 and n > size:
        return False
    cdef int kind = PyUnicode_KIND(v)
    cdef void* data = PyUnicode_DATA(v)
    cdef Py_UCS4 c
    if kind == 1:  # Latin-1: no surrogates possible
        return memchr(data, 0, n) == NULL
    for i in range(n):
        c = PyUnicode_READ(kind, data, i)
        if c == 0 or 0xD800 <= c <= 0xDFFF:
            return False
    return True


cdef inline object _digits(object v, Py_ssize_t most):
    """``int(v)`` of an ASCII digit string of 1 to ``most`` characters, else None."""
    if type(v) is not str or not PyUnicode_IS_ASCII(v):
        return None
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v)
    if n == 0 or n > most:
        return None
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(v)
    cdef long long x = 0
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return None
        x = x * 10 + (p[i] - 48)
    return PyLong_FromLongLong(x)


cdef inline bint _int_in(object v, long long lo, long long hi):
    if type(v) is not int:
        return False
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0 and lo <= x <= hi


cdef inline int _two(const unsigned char* p):
    """Two ASCII digits as a number, or -1."""
    if p[0] < 48 or p[0] > 57 or p[1] < 48 or p[1] > 57:
        return -1
    return (p[0] - 48) * 10 + (p[1] - 48)


def iso_utc(v):
    """Canvas's own time form, ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z``, as the naive UTC
    datetime ``coerce.to_datetime`` makes of it; None for any other form (the caller
    then takes the general path, which also says what is wrong)."""
    return _iso_utc(v)


cdef object _iso_utc(object v):
    if type(v) is not str or not PyUnicode_IS_ASCII(v):
        return None
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v)
    if n != 20 and n != 24 and n != 27:
        return None
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(v)
    if (p[4] != 45 or p[7] != 45 or p[10] != 84 or p[13] != 58 or p[16] != 58
            or p[n - 1] != 90):
        return None
    cdef int hi = _two(p), lo = _two(p + 2)
    cdef int month = _two(p + 5), day = _two(p + 8)
    cdef int hour = _two(p + 11), minute = _two(p + 14), second = _two(p + 17)
    if hi < 0 or lo < 0 or month < 0 or day < 0 or hour < 0 or minute < 0 or second < 0:
        return None
    cdef long micro = 0
    cdef Py_ssize_t i
    if n > 20:
        if p[19] != 46:
            return None
        for i in range(20, n - 1):
            if p[i] < 48 or p[i] > 57:
                return None
            micro = micro * 10 + (p[i] - 48)
        if n == 24:
            micro *= 1000
    try:
        return datetime_new(hi * 100 + lo, month, day, hour, minute, second, micro, None)
    except ValueError:
        return None


cdef Py_ssize_t _URN_PREFIX_LEN = 23  # len("urn:instructure:canvas:")
cdef bytes _URN_PREFIX = b"urn:instructure:canvas:"


cdef object _urn_id(object v, object general):
    """``coerce.canvas_id_of_urn``: the id at the end of a Canvas URN, else None."""
    if type(v) is not str:
        return None
    if not PyUnicode_IS_ASCII(v):
        return general(v)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(v)
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(v)
    if n < _URN_PREFIX_LEN or memcmp(p, <const char*>_URN_PREFIX, _URN_PREFIX_LEN) != 0:
        return None
    cdef Py_ssize_t colon = n - 1
    while p[colon] != 58:  # the prefix holds a colon, so this stops
        colon -= 1
    cdef Py_ssize_t digits = n - colon - 1
    if digits == 0:
        return None
    if digits > 18:
        return general(v)
    cdef long long x = 0
    cdef Py_ssize_t i
    for i in range(colon + 1, n):
        if p[i] < 48 or p[i] > 57:
            return None
        x = x * 10 + (p[i] - 48)
    return PyLong_FromLongLong(x)


cdef class Builder:
    """``build(flat, issues, lead=None) -> row``, made from ``rows.kernel_spec``."""

    cdef list _slots
    cdef object _convert

    def __init__(self, spec, convert):
        self._slots = []
        self._convert = convert
        cdef _Slot s
        for column, source, slot, kind, size in spec:
            s = _Slot()
            s.column, s.source, s.slot, s.kind = column, source, slot, kind
            s.coerce = slot.coerce
            s.in_chars = slot.unit == "chars"
            s.size = -1 if size is None else size
            self._slots.append(s)

    def __call__(self, dict flat, list issues, lead=None):
        cdef dict row = _PyDict_NewPresized(len(self._slots))
        cdef _Slot s
        cdef PyObject* found
        cdef object v, n
        for s in self._slots:
            if s.kind == REUSE:
                PyDict_SetItem(row, s.column, lead[s.source])
                continue
            found = PyDict_GetItem(flat, s.source)
            if found == NULL:
                PyDict_SetItem(row, s.column, None)
                continue
            v = <object>found
            if v is not None:
                if s.kind == TEXT:
                    if not _clean_ascii(v, s.size) and not (
                        s.in_chars and _clean_wide(v, s.size)
                    ):
                        v = self._convert(s.slot, v, issues)
                elif s.kind == INT64:
                    n = _digits(v, 18)
                    if n is not None:
                        v = n
                    elif not _int_in(v, -9223372036854775807 - 1, 9223372036854775807):
                        v = self._convert(s.slot, v, issues)
                elif s.kind == DATETIME:
                    n = _iso_utc(v)
                    v = n if n is not None else self._convert(s.slot, v, issues)
                elif s.kind == URN:
                    v = _urn_id(v, s.coerce)
                elif s.kind == INT32:
                    n = _digits(v, 9)
                    if n is not None:
                        v = n
                    elif not _int_in(v, -2147483648, 2147483647):
                        v = self._convert(s.slot, v, issues)
                else:
                    v = self._convert(s.slot, v, issues)
            PyDict_SetItem(row, s.column, v)
        return row
