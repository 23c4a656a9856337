# cython: language_level=3, boundscheck=False, wraparound=False
"""The COPY text renderer of ``ledbelly.db.bulk``, compiled.

Line for line the text the generated f-string renderer makes: ``\\N`` for None,
``isoformat()`` for a time column's datetimes, ``format(v, "")`` for any other value,
and a line whose values hold a tab, a newline, a carriage return or a backslash
rebuilt value by value by ``copy_line_slow``.

Lines are written into one C buffer as UTF-8: text copied, integers and naive
datetimes formatted in C, no string made per value; the buffer is what psycopg2 sends
(or it is decoded once, for a caller that wants text). A line with a string UTF-8
cannot hold (a lone surrogate) is made from Python strings instead, as the generated
renderer makes it, and the database's driver then refuses it as it refuses the other's.
"""

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.dict cimport PyDict_GetItem
from cpython.datetime cimport (
    import_datetime,
    datetime_year,
    datetime_month,
    datetime_day,
    datetime_hour,
    datetime_minute,
    datetime_second,
    datetime_microsecond,
    datetime_tzinfo,
)
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memcpy
from datetime import datetime as _datetime

import_datetime()

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyBytes_FromStringAndSize(const char* s, Py_ssize_t size)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    Py_ssize_t PyUnicode_FindChar(object s, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end,
                                  int direction) except -2

cdef object _DT = _datetime


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _reserve(Buffer* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t need = b.size + more
    cdef char* grown
    if need <= b.capacity:
        return 0
    cdef Py_ssize_t capacity = b.capacity * 2 if b.capacity else 1 << 16
    while capacity < need:
        capacity *= 2
    grown = <char*>PyMem_Realloc(b.data, capacity)
    if grown == NULL:
        raise MemoryError()
    b.data, b.capacity = grown, capacity
    return 0


cdef inline int _put(Buffer* b, const char* s, Py_ssize_t n) except -1:
    _reserve(b, n)
    memcpy(b.data + b.size, s, n)
    b.size += n
    return 0


cdef inline int _put_char(Buffer* b, char c) except -1:
    _reserve(b, 1)
    b.data[b.size] = c
    b.size += 1
    return 0


cdef int _put_digits(Buffer* b, unsigned long long x, int width) except -1:
    """``x`` in decimal, zero-padded to ``width`` digits."""
    cdef char tmp[24]
    cdef int n = 0
    while x or n < width:
        tmp[23 - n] = <char>(48 + x % 10)
        x //= 10
        n += 1
    return _put(b, tmp + 24 - n, n)


cdef int _put_int(Buffer* b, long long x) except -1:
    if x < 0:
        _put_char(b, 45)
        return _put_digits(b, <unsigned long long>(-(x + 1)) + 1, 1)
    return _put_digits(b, <unsigned long long>x, 1)


cdef int _put_naive_time(Buffer* b, object v) except -1:
    """``v.isoformat()`` of a naive datetime."""
    _put_digits(b, datetime_year(v), 4)
    _put_char(b, 45)
    _put_digits(b, datetime_month(v), 2)
    _put_char(b, 45)
    _put_digits(b, datetime_day(v), 2)
    _put_char(b, 84)
    _put_digits(b, datetime_hour(v), 2)
    _put_char(b, 58)
    _put_digits(b, datetime_minute(v), 2)
    _put_char(b, 58)
    _put_digits(b, datetime_second(v), 2)
    cdef int micro = datetime_microsecond(v)
    if micro:
        _put_char(b, 46)
        _put_digits(b, micro, 6)
    return 0


cdef enum:
    CLEAN = 0
    DIRTY = 1  # a value holds what COPY must escape: the whole line value by value
    WIDE = 2  # a value has no UTF-8 form (a lone surrogate): the line from Python strings


cdef int _put_ascii(Buffer* b, object text) except -1:
    """Copy ``text`` as UTF-8; DIRTY if it holds a tab, newline, carriage return or
    backslash, WIDE if it has no UTF-8 form (nothing copied then). Those four bytes
    never occur inside a longer UTF-8 sequence, so the bytes can be searched."""
    cdef Py_ssize_t n
    cdef const unsigned char* p
    if PyUnicode_IS_ASCII(text):
        n = PyUnicode_GET_LENGTH(text)
        p = <const unsigned char*>PyUnicode_DATA(text)
    else:
        try:
            p = <const unsigned char*>PyUnicode_AsUTF8AndSize(text, &n)
        except UnicodeEncodeError:
            return WIDE
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if c == 9 or c == 10 or c == 13 or c == 92:
            return DIRTY
    _put(b, <const char*>p, n)
    return CLEAN


cdef int _put_utf8(Buffer* b, str text) except -1:
    """Copy ``text`` as UTF-8 whatever it holds; WIDE if it has no UTF-8 form."""
    cdef Py_ssize_t n
    cdef const char* p
    try:
        p = PyUnicode_AsUTF8AndSize(text, &n)
    except UnicodeEncodeError:
        return WIDE
    _put(b, p, n)
    return CLEAN


cdef int _put_value(Buffer* b, object v, bint is_time) except -1:
    cdef int overflow = 0
    cdef long long x
    if v is None:
        return _put(b, b"\\N", 2)
    cls = type(v)
    if is_time:
        if cls is _DT and datetime_tzinfo(v) is None:
            return _put_naive_time(b, v)
        return _put_ascii(b, f"{v.isoformat()}")
    if cls is str:
        return _put_ascii(b, v)
    if cls is int:
        x = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow == 0:
            return _put_int(b, x)
    return _put_ascii(b, f"{v}")


cdef inline bint _needs_escape(str text):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    return (
        PyUnicode_FindChar(text, 9, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 10, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 13, 0, n, 1) >= 0
        or PyUnicode_FindChar(text, 92, 0, n, 1) >= 0
    )


cdef str _wide_line(tuple values, tuple is_time, object slow):
    """A line from Python strings, as the generated renderer makes it."""
    cdef list texts = []
    cdef Py_ssize_t i
    for i in range(len(values)):
        v = values[i]
        if v is None:
            texts.append("\\N")
            continue
        text = f"{v.isoformat()}" if is_time[i] else f"{v}"
        if _needs_escape(text):
            return slow(values)
        texts.append(text)
    return "\t".join(texts) + "\n"


def render_rows(list rows, tuple columns, tuple is_time, slow, bint utf8=False,
                bint exact=False):
    """Every row of ``rows`` as one COPY line, columns in order; ``is_time[i]`` tells
    whether column i is a time column and ``slow`` is the value-by-value line builder.

    Text, or with ``utf8`` its UTF-8 bytes (text still, if a line has no UTF-8 form).
    With ``exact``, None unless every row has exactly ``columns`` as its keys (the
    caller then groups the rows by their columns first)."""
    cdef Buffer b
    b.data, b.size, b.capacity = NULL, 0, 0
    cdef list chunks = []
    cdef Py_ssize_t ncols = len(columns)
    cdef Py_ssize_t i, start
    cdef dict row
    cdef int state
    cdef PyObject* found
    try:
        for row in rows:
            if exact and len(row) != ncols:
                return None
            start = b.size
            state = CLEAN
            for i in range(ncols):
                found = PyDict_GetItem(row, columns[i])
                if found == NULL:
                    if exact:
                        return None
                    raise KeyError(columns[i])
                state = _put_value(&b, <object>found, is_time[i] is True)
                if state != CLEAN:
                    break
                _put_char(&b, 9 if i < ncols - 1 else 10)
            if state == CLEAN:
                continue
            values = tuple([row[c] for c in columns])
            b.size = start
            line = slow(values) if state == DIRTY else _wide_line(values, is_time, slow)
            if _put_utf8(&b, line) == WIDE:  # kept as text, for the driver to judge
                if start:
                    chunks.append(PyUnicode_DecodeUTF8(b.data, start, NULL))
                b.size = 0
                chunks.append(line)
        if utf8 and not chunks:
            return PyBytes_FromStringAndSize(b.data, b.size)
        if b.size or not chunks:
            chunks.append(PyUnicode_DecodeUTF8(b.data, b.size, NULL))
    finally:
        PyMem_Free(b.data)
    return "".join(chunks)
