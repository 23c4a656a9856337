# cython: language_level=3, boundscheck=False, wraparound=False
"""The COPY text renderer of ``ledbelly.db.bulk``, compiled.

Line for line the text the generated f-string renderer makes: ``\\N`` for None,
``isoformat()`` (remembered) for a time column's datetimes, ``format(v, "")`` for any
other value, and a line whose values hold a tab, a newline, a carriage return or a
backslash rebuilt value by value by ``copy_line_slow``.
"""

from cpython.object cimport PyObject
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_SIZE
from datetime import datetime as _datetime

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2

cdef object _DT = _datetime


cdef inline bint _needs_escape(str text):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef const unsigned char* p
    cdef Py_ssize_t i
    cdef unsigned char c
    if PyUnicode_IS_ASCII(text):
        p = <const unsigned char*>PyUnicode_DATA(text)
        for i in range(n):
            c = p[i]
            if c == 9 or c == 10 or c == 13 or c == 92:
                return True
        return False
    return (
        PyUnicode_FindChar(text, 9, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 10, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 13, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 92, 0, n, 1) >= 0
    )


def render_rows(list rows, tuple columns, tuple is_time, iso, slow):
    """Every row of ``rows`` as one COPY line, columns in order; ``is_time[i]`` tells
    whether column i is a time column, ``iso`` is the remembered isoformat texts and
    ``slow`` the value-by-value line builder."""
    cdef list out = []
    cdef Py_ssize_t ncols = len(columns)
    cdef Py_ssize_t i, start
    cdef dict row
    cdef object v, text
    cdef bint dirty
    for row in rows:
        start = PyList_GET_SIZE(out)
        dirty = False
        for i in range(ncols):
            v = row[columns[i]]
            if v is None:
                out.append("\\N")
            else:
                if is_time[i]:
                    text = iso[v] if type(v) is _DT else v.isoformat()
                else:
                    text = f"{v}"
                if not dirty and _needs_escape(text):
                    dirty = True
                out.append(text)
            out.append("\t" if i < ncols - 1 else "\n")
        if dirty:
            del out[start:]
            out.append(slow(tuple([row[c] for c in columns])))
    return "".join(out)
