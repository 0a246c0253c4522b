/*
 * Avro binary encoder for hfloop records: a compiled schema program, a dict in, bytes out.
 *
 * Why it exists: fastavro's schemaless_writer costs ~14 us for one Interaction, most of it
 * interpreting the schema per field; the SDK's whole budget per record is ~4 us.
 *
 * The contract (tested byte for byte against fastavro in tests/backbone):
 *   - it accepts only exact builtin types (None, bool, int, float, str, bytes, list, dict),
 *     a subset of what fastavro's validator accepts for each Avro type, so whenever this
 *     encoder succeeds, fastavro would have written the same bytes;
 *   - on anything else it raises (Unsupported, OverflowError, UnicodeEncodeError, ...) and the
 *     caller hands the record to fastavro, which either writes it (e.g. a numpy int) or names
 *     the offending field. It never guesses.
 * The program is built in Python (hfloop.events.native.program) from fastavro's parsed schema:
 * a list of node tuples, children referenced by index, root at 0 (recursive schemas work).
 *
 * The same program also drives InteractionSender: the SDK's log_interaction in C, which writes an
 * Interaction straight from the call's arguments with these encoding routines (see its section).
 *
 * The same program also drives a skip-validator (Validator, at the end of this file) for the
 * analytics sink, which hands Avro bodies to ClickHouse undecoded: it walks one body without
 * building any object and accepts exactly what fastavro's schemaless_reader accepts, plus
 * optional value ranges on int/long nodes (timestamps). The encoder ignores those ranges.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <time.h>

#ifndef HFLOOP_SOURCE_HASH /* set by build.py: lets the loader refuse a module built from older source */
#define HFLOOP_SOURCE_HASH "unknown"
#endif

enum {
    K_NULL, K_BOOLEAN, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BYTES, K_STRING,
    K_FIXED, K_ENUM, K_ARRAY, K_MAP, K_RECORD, K_UNION
};
static const char *KIND_NAMES[] = {
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    "fixed", "enum", "array", "map", "record", "union", NULL
};

typedef struct Node Node;

typedef struct {
    PyObject *name;  /* interned str, owned */
    Node *type;
    PyObject *dflt;  /* owned; NULL when the field has no default */
} Field;

struct Node {
    int kind;
    Py_ssize_t size;   /* fixed: byte length */
    PyObject *symbols; /* enum: dict symbol -> index, owned */
    Node *child;       /* array items, map values */
    Py_ssize_t n;      /* record fields / union branches */
    Field *fields;
    Node **branches;
    /* union dispatch decided once: branch for None, bool, list, dict (-1: none or ambiguous) */
    Py_ssize_t u_none, u_bool, u_list, u_dict;
    int u_has_array; /* bytes are a Sequence to fastavro: with an array branch, do not guess */
    Py_ssize_t nsymbols;   /* enum: symbol count (the validator checks indexes against it) */
    int has_range;         /* int/long: the validator refuses values outside [lo, hi] */
    long long lo, hi;
};

typedef struct {
    PyObject_HEAD
    Py_ssize_t nnodes;
    Node *nodes;
} Encoder;

static PyObject *Unsupported; /* hfloop.events.native._avroenc.Unsupported (ValueError) */
static PyObject *TYPE_KEY;    /* "-type": fastavro's union hint; its presence means "ask fastavro" */

/* --- output buffer ---------------------------------------------------------------------- */

#define STACK_BYTES 2048

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    int on_heap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t need) {
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need) cap *= 2;
    char *p;
    if (b->on_heap) {
        p = PyMem_Realloc(b->data, (size_t)cap);
    } else {
        p = PyMem_Malloc((size_t)cap);
        if (p) memcpy(p, b->data, (size_t)b->len);
    }
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    b->on_heap = 1;
    return 0;
}

#define RESERVE(b, k) (((b)->len + (Py_ssize_t)(k) <= (b)->cap) ? 0 : buf_grow((b), (Py_ssize_t)(k)))

static int put_long(Buf *b, long long v) {
    if (RESERVE(b, 10) < 0) return -1;
    uint64_t n = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zig-zag */
    unsigned char *p = (unsigned char *)b->data + b->len;
    while (n & ~(uint64_t)0x7F) {
        *p++ = (unsigned char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *p++ = (unsigned char)n;
    b->len = (char *)p - b->data;
    return 0;
}

static int put_raw(Buf *b, const char *s, Py_ssize_t k) {
    if (RESERVE(b, k) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)k);
    b->len += k;
    return 0;
}

static int put_bytes(Buf *b, const char *s, Py_ssize_t k) {
    if (put_long(b, k) < 0) return -1;
    return put_raw(b, s, k);
}

static int put_le(Buf *b, uint64_t bits, int width) {
    if (RESERVE(b, width) < 0) return -1;
    unsigned char *p = (unsigned char *)b->data + b->len;
    for (int i = 0; i < width; i++) p[i] = (unsigned char)(bits >> (8 * i));
    b->len += width;
    return 0;
}

static int unsupported(const char *what, PyObject *o) {
    PyErr_Format(Unsupported, "%s: %.80s not handled natively", what, Py_TYPE(o)->tp_name);
    return -1;
}

/* --- encoding --------------------------------------------------------------------------- */

static int encode(Node *n, PyObject *o, Buf *b);

static int encode_string(PyObject *o, Buf *b) {
    Py_ssize_t k;
    const char *s = PyUnicode_AsUTF8AndSize(o, &k); /* raises on lone surrogates, as fastavro does */
    if (!s) return -1;
    return put_bytes(b, s, k);
}

static int as_double(PyObject *o, double *d) {
    if (PyFloat_CheckExact(o)) {
        *d = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    if (PyLong_CheckExact(o)) {
        *d = PyLong_AsDouble(o); /* same rounding as float(int); OverflowError beyond range */
        return (*d == -1.0 && PyErr_Occurred()) ? -1 : 0;
    }
    return unsupported("double", o);
}

/* A number whose first matching branch is a float: fastavro prefers a later double. */
static Py_ssize_t float_or_later_double(Node *n, Py_ssize_t float_at) {
    for (Py_ssize_t j = float_at + 1; j < n->n; j++)
        if (n->branches[j]->kind == K_DOUBLE) return j;
    return float_at;
}

/* Branch index of a union for one datum: the branch fastavro's write_union would pick.
   -1: none or not decidable here (the caller declines); -2: a Python error is set. */
static Py_ssize_t union_pick(Node *n, PyObject *o) {
    Py_ssize_t i;
    if (o == Py_None) return n->u_none;
    if (o == Py_True || o == Py_False) return n->u_bool;
    if (PyLong_CheckExact(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -2;
        if (overflow) return -1;
        for (i = 0; i < n->n; i++) {
            int k = n->branches[i]->kind;
            if ((k == K_INT && v >= INT32_MIN && v <= INT32_MAX) || k == K_LONG || k == K_DOUBLE) return i;
            if (k == K_FLOAT) return float_or_later_double(n, i);
        }
        return -1;
    }
    if (PyFloat_CheckExact(o)) {
        for (i = 0; i < n->n; i++) {
            int k = n->branches[i]->kind;
            if (k == K_DOUBLE) return i;
            if (k == K_FLOAT) return float_or_later_double(n, i);
        }
        return -1;
    }
    if (PyUnicode_CheckExact(o)) {
        for (i = 0; i < n->n; i++) {
            Node *c = n->branches[i];
            if (c->kind == K_STRING) return i;
            if (c->kind == K_ENUM) {
                PyObject *idx = PyDict_GetItemWithError(c->symbols, o);
                if (idx) return i;
                if (PyErr_Occurred()) return -2;
            }
        }
        return -1;
    }
    if (PyBytes_CheckExact(o)) {
        if (n->u_has_array) return -1;
        for (i = 0; i < n->n; i++) {
            Node *c = n->branches[i];
            if (c->kind == K_BYTES) return i;
            if (c->kind == K_FIXED && PyBytes_GET_SIZE(o) == c->size) return i;
        }
        return -1;
    }
    if (PyList_CheckExact(o)) return n->u_list;
    if (PyDict_CheckExact(o)) {
        int has = PyDict_Contains(o, TYPE_KEY);
        if (has < 0) return -2;
        return has ? -1 : n->u_dict;
    }
    return -1; /* tuples (fastavro's (name, value) notation) and everything else */
}

static int encode_record(Node *n, PyObject *o, Buf *b) {
    if (!PyDict_CheckExact(o)) return unsupported("record", o);
    int has = PyDict_Contains(o, TYPE_KEY);
    if (has) return has < 0 ? -1 : unsupported("record with -type", o);
    for (Py_ssize_t i = 0; i < n->n; i++) {
        Field *f = &n->fields[i];
        PyObject *v = PyDict_GetItemWithError(o, f->name);
        if (!v) {
            if (PyErr_Occurred()) return -1;
            if (!f->dflt) {
                PyErr_Format(Unsupported, "field %U is missing", f->name);
                return -1;
            }
            v = f->dflt;
        }
        Py_INCREF(v); /* a key's __eq__ could run Python code and drop the dict's reference */
        int rc = encode(f->type, v, b);
        Py_DECREF(v);
        if (rc < 0) return -1;
    }
    return 0;
}

static int encode_array(Node *n, PyObject *o, Buf *b) {
    if (!PyList_CheckExact(o)) return unsupported("array", o);
    Py_ssize_t len = PyList_GET_SIZE(o);
    if (len > 0) {
        if (put_long(b, len) < 0) return -1;
        for (Py_ssize_t i = 0; i < len; i++) {
            if (PyList_GET_SIZE(o) != len) {
                PyErr_SetString(Unsupported, "list changed size while encoding");
                return -1;
            }
            PyObject *item = PyList_GET_ITEM(o, i);
            Py_INCREF(item);
            int rc = encode(n->child, item, b);
            Py_DECREF(item);
            if (rc < 0) return -1;
        }
    }
    return put_long(b, 0);
}

static int encode_map(Node *n, PyObject *o, Buf *b) {
    if (!PyDict_CheckExact(o)) return unsupported("map", o);
    Py_ssize_t len = PyDict_GET_SIZE(o);
    if (len > 0) {
        if (put_long(b, len) < 0) return -1;
        Py_ssize_t pos = 0, seen = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (!PyUnicode_CheckExact(k)) return unsupported("map key", k);
            Py_INCREF(k);
            Py_INCREF(v);
            int rc = encode_string(k, b);
            if (rc == 0) rc = encode(n->child, v, b);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0) return -1;
            seen++;
        }
        if (seen != len || PyDict_GET_SIZE(o) != len) {
            PyErr_SetString(Unsupported, "dict changed size while encoding");
            return -1;
        }
    }
    return put_long(b, 0);
}

static int encode(Node *n, PyObject *o, Buf *b) {
    switch (n->kind) {
    case K_NULL:
        return o == Py_None ? 0 : unsupported("null", o);
    case K_BOOLEAN:
        if (o == Py_True || o == Py_False) {
            if (RESERVE(b, 1) < 0) return -1;
            b->data[b->len++] = (char)(o == Py_True);
            return 0;
        }
        return unsupported("boolean", o);
    case K_INT:
    case K_LONG: {
        if (!PyLong_CheckExact(o)) return unsupported("int/long", o);
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (overflow || (n->kind == K_INT && (v < INT32_MIN || v > INT32_MAX))) {
            PyErr_SetString(Unsupported, "integer out of range");
            return -1;
        }
        return put_long(b, v);
    }
    case K_FLOAT: {
        double d;
        if (as_double(o, &d) < 0) return -1;
        if (isfinite(d) && fabs(d) > FLT_MAX) {
            PyErr_SetString(Unsupported, "float out of range");
            return -1;
        }
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        return put_le(b, bits, 4);
    }
    case K_DOUBLE: {
        double d;
        if (as_double(o, &d) < 0) return -1;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_le(b, bits, 8);
    }
    case K_BYTES:
        if (!PyBytes_CheckExact(o)) return unsupported("bytes", o);
        return put_bytes(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
    case K_STRING:
        if (!PyUnicode_CheckExact(o)) return unsupported("string", o);
        return encode_string(o, b);
    case K_FIXED:
        if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) != n->size) return unsupported("fixed", o);
        return put_raw(b, PyBytes_AS_STRING(o), n->size);
    case K_ENUM: {
        if (!PyUnicode_CheckExact(o)) return unsupported("enum", o);
        PyObject *idx = PyDict_GetItemWithError(n->symbols, o);
        if (!idx) {
            if (!PyErr_Occurred()) PyErr_Format(Unsupported, "%R is not an enum symbol", o);
            return -1;
        }
        return put_long(b, PyLong_AsLongLong(idx));
    }
    case K_ARRAY:
        return encode_array(n, o, b);
    case K_MAP:
        return encode_map(n, o, b);
    case K_RECORD:
        return encode_record(n, o, b);
    case K_UNION: {
        Py_ssize_t i = union_pick(n, o);
        if (i == -2) return -1;
        if (i < 0) return unsupported("union", o);
        if (put_long(b, i) < 0) return -1;
        return encode(n->branches[i], o, b);
    }
    }
    PyErr_SetString(PyExc_SystemError, "corrupt encoder program");
    return -1;
}

/* --- the Encoder type ------------------------------------------------------------------- */

static void free_nodes(Encoder *self) {
    if (!self->nodes) return;
    for (Py_ssize_t i = 0; i < self->nnodes; i++) {
        Node *n = &self->nodes[i];
        Py_CLEAR(n->symbols);
        if (n->fields) {
            for (Py_ssize_t j = 0; j < n->n; j++) {
                Py_CLEAR(n->fields[j].name);
                Py_CLEAR(n->fields[j].dflt);
            }
            PyMem_Free(n->fields);
        }
        PyMem_Free(n->branches);
    }
    PyMem_Free(self->nodes);
    self->nodes = NULL;
}

static void Encoder_dealloc(Encoder *self) {
    free_nodes(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int child_index(Encoder *self, PyObject *o, Node **out) {
    Py_ssize_t i = PyLong_AsSsize_t(o);
    if (i == -1 && PyErr_Occurred()) return -1;
    if (i < 0 || i >= self->nnodes) {
        PyErr_Format(PyExc_ValueError, "node index %zd out of range", i);
        return -1;
    }
    *out = &self->nodes[i];
    return 0;
}

static int build_node(Encoder *self, Node *n, PyObject *t) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(t, 0))) {
        PyErr_SetString(PyExc_TypeError, "each node is a tuple (kind, ...)");
        return -1;
    }
    const char *kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(t, 0));
    if (!kind) return -1;
    n->kind = -1;
    for (int k = 0; KIND_NAMES[k]; k++)
        if (strcmp(kind, KIND_NAMES[k]) == 0) n->kind = k;
    if (n->kind < 0) {
        PyErr_Format(PyExc_ValueError, "unknown node kind %s", kind);
        return -1;
    }
    n->u_none = n->u_bool = n->u_list = n->u_dict = -1;
    Py_ssize_t argc = PyTuple_GET_SIZE(t) - 1;
    PyObject *arg = argc > 0 ? PyTuple_GET_ITEM(t, 1) : NULL;
    int needs_arg = n->kind >= K_FIXED;
    if (needs_arg && argc != 1) {
        PyErr_Format(PyExc_ValueError, "node %s takes one argument", kind);
        return -1;
    }
    switch (n->kind) {
    case K_FIXED:
        n->size = PyLong_AsSsize_t(arg);
        return (n->size == -1 && PyErr_Occurred()) ? -1 : 0;
    case K_ENUM:
        if (!PyDict_Check(arg)) {
            PyErr_SetString(PyExc_TypeError, "enum takes a dict symbol -> index");
            return -1;
        }
        Py_INCREF(arg);
        n->symbols = arg;
        n->nsymbols = PyDict_GET_SIZE(arg);
        return 0;
    case K_ARRAY:
    case K_MAP:
        return child_index(self, arg, &n->child);
    case K_RECORD: {
        if (!PyTuple_Check(arg)) {
            PyErr_SetString(PyExc_TypeError, "record takes a tuple of fields");
            return -1;
        }
        n->n = PyTuple_GET_SIZE(arg);
        n->fields = PyMem_Calloc((size_t)(n->n ? n->n : 1), sizeof(Field));
        if (!n->fields) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n->n; i++) {
            PyObject *f = PyTuple_GET_ITEM(arg, i); /* (name, type_index, has_default, default) */
            if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 4 || !PyUnicode_Check(PyTuple_GET_ITEM(f, 0))) {
                PyErr_SetString(PyExc_TypeError, "a field is (name, type_index, has_default, default)");
                return -1;
            }
            PyObject *name = PyTuple_GET_ITEM(f, 0);
            Py_INCREF(name);
            PyUnicode_InternInPlace(&name);
            n->fields[i].name = name;
            if (child_index(self, PyTuple_GET_ITEM(f, 1), &n->fields[i].type) < 0) return -1;
            int has_default = PyObject_IsTrue(PyTuple_GET_ITEM(f, 2));
            if (has_default < 0) return -1;
            if (has_default) {
                n->fields[i].dflt = PyTuple_GET_ITEM(f, 3);
                Py_INCREF(n->fields[i].dflt);
            }
        }
        return 0;
    }
    case K_UNION: {
        if (!PyTuple_Check(arg)) {
            PyErr_SetString(PyExc_TypeError, "union takes a tuple of node indexes");
            return -1;
        }
        n->n = PyTuple_GET_SIZE(arg);
        n->branches = PyMem_Calloc((size_t)(n->n ? n->n : 1), sizeof(Node *));
        if (!n->branches) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n->n; i++)
            if (child_index(self, PyTuple_GET_ITEM(arg, i), &n->branches[i]) < 0) return -1;
        return 0;
    }
    case K_INT:
    case K_LONG:
        /* (kind) or (kind, lo, hi): bounds only the validator checks (accepted timestamps) */
        if (argc == 2) {
            n->lo = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 1));
            if (n->lo == -1 && PyErr_Occurred()) return -1;
            n->hi = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 2));
            if (n->hi == -1 && PyErr_Occurred()) return -1;
            n->has_range = 1;
            return 0;
        }
        /* fall through */
    default:
        if (argc != 0) {
            PyErr_Format(PyExc_ValueError, "node %s takes no argument", kind);
            return -1;
        }
        return 0;
    }
}

/* Decide the type-only union dispatch once all nodes exist (branches may be forward refs). */
static int plan_unions(Encoder *self) {
    for (Py_ssize_t i = 0; i < self->nnodes; i++) {
        Node *n = &self->nodes[i];
        if (n->kind != K_UNION) continue;
        int arrays = 0, dicts = 0;
        for (Py_ssize_t j = 0; j < n->n; j++) {
            Node *c = n->branches[j];
            if (c->kind == K_UNION) {
                PyErr_SetString(PyExc_ValueError, "a union directly inside a union is not valid Avro");
                return -1;
            }
            if (c->kind == K_NULL && n->u_none < 0) n->u_none = j;
            if (c->kind == K_BOOLEAN && n->u_bool < 0) n->u_bool = j;
            if (c->kind == K_ARRAY) {
                arrays++;
                n->u_list = j;
            }
            if (c->kind == K_MAP || c->kind == K_RECORD) {
                dicts++;
                n->u_dict = j;
            }
        }
        /* fastavro validates every candidate and picks by rules this encoder does not mirror
           (most matching fields, a map after a record): with two candidates, decline. */
        if (arrays != 1) n->u_list = -1;
        if (dicts != 1) n->u_dict = -1;
        n->u_has_array = arrays > 0;
    }
    return 0;
}

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwds) {
    PyObject *program;
    static char *kwlist[] = {"program", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyList_Type, &program)) return -1;
    free_nodes(self);
    Py_ssize_t count = PyList_GET_SIZE(program);
    if (count < 1) {
        PyErr_SetString(PyExc_ValueError, "empty program");
        return -1;
    }
    self->nodes = PyMem_Calloc((size_t)count, sizeof(Node));
    if (!self->nodes) {
        PyErr_NoMemory();
        return -1;
    }
    self->nnodes = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (build_node(self, &self->nodes[i], PyList_GET_ITEM(program, i)) < 0) {
            free_nodes(self);
            return -1;
        }
    }
    if (plan_unions(self) < 0) {
        free_nodes(self);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(encode_doc,
             "encode(prefix: bytes, datum) -> bytes\n\n"
             "prefix + the Avro binary encoding of datum. Raises Unsupported (or the conversion's own\n"
             "error) for anything it does not handle exactly as fastavro would.");

static PyObject *Encoder_encode(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(prefix, datum) takes 2 arguments");
        return NULL;
    }
    if (!self->nodes) {
        PyErr_SetString(PyExc_RuntimeError, "Encoder not initialised");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "prefix must be bytes");
        return NULL;
    }
    char stack[STACK_BYTES];
    Buf b = {stack, 0, STACK_BYTES, 0};
    PyObject *out = NULL;
    if (put_raw(&b, PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0])) == 0 &&
        encode(&self->nodes[0], args[1], &b) == 0)
        out = PyBytes_FromStringAndSize(b.data, b.len);
    if (b.on_heap) PyMem_Free(b.data);
    return out;
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL, encode_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hfloop.events.native._avroenc.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Encoder(program): Avro binary encoder for one compiled schema."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

/* --- the skip-validator ----------------------------------------------------------------- */

/* Why: the analytics sink gives ClickHouse the Avro bodies as they came from Kafka, and
   ClickHouse's reader ignores bytes after a record and does not check UTF-8, so without this
   it would store records the serde refuses. Each rule below mirrors fastavro 1.13's Cython
   reader (what Serde.decode runs), quirks included, so that a body is accepted exactly when
   Serde.decode would decode it (tests/analytics/test_analytics_validate.py checks this):
   - a varint has no length limit; bits past the 64th wrap around as an x86 shift does;
   - int is read as long (no 32-bit range check); a boolean is any one byte;
   - enum and union indexes are Python list indexes: -count <= i < count;
   - an array/map block with a negative count carries a byte size that is read and ignored;
   - string and bytes lengths must be >= 0 and within the body; strings are strict UTF-8.
   On top of that, int/long nodes compiled with a range refuse values outside it. */

#define V_BAD (-1)   /* the serde would refuse this body too */
#define V_RANGE (-2) /* a value outside its node's range (a timestamp outside 1970..9999) */
#define V_MAX_DEPTH 256 /* deeper nesting (recursive schemas): refuse; the caller asks the serde */

typedef struct {
    const unsigned char *p, *end;
    int depth;
} Reader;

static int read_varint(Reader *r, long long *out) {
    if (r->p >= r->end) return V_BAD;
    uint64_t b = *r->p++;
    uint64_t n = b & 0x7F;
    unsigned shift = 7;
    while (b & 0x80) {
        if (r->p >= r->end) return V_BAD;
        b = *r->p++;
        n |= (b & 0x7F) << (shift & 63);
        shift += 7;
    }
    *out = (long long)((n >> 1) ^ (0 - (n & 1)));
    return 0;
}

/* Strict UTF-8 as Python's decoder takes it: no overlong forms, no surrogates, <= U+10FFFF. */
static int utf8_ok(const unsigned char *s, const unsigned char *end) {
    while (s < end) {
        if (end - s >= 8) { /* ASCII runs, eight bytes at a time: most text in these records */
            uint64_t w;
            memcpy(&w, s, 8);
            if (!(w & 0x8080808080808080ULL)) {
                s += 8;
                continue;
            }
        }
        unsigned c = *s;
        if (c < 0x80) {
            s++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (end - s < 2 || (s[1] & 0xC0) != 0x80) return 0;
            s += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
            if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)) return 0;
            s += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                return 0;
            if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) return 0;
            s += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static int skip_raw(Reader *r, long long k) {
    if (k < 0 || k > r->end - r->p) return V_BAD;
    r->p += k;
    return 0;
}

static int skip_string(Reader *r, int utf8) {
    long long k;
    if (read_varint(r, &k) < 0) return V_BAD;
    if (k < 0 || k > r->end - r->p) return V_BAD;
    if (utf8 && !utf8_ok(r->p, r->p + k)) return V_BAD;
    r->p += k;
    return 0;
}

static int check(Node *n, Reader *r);

static int check_blocks(Node *n, Reader *r) {
    Node *item = n->child;
    /* a zero-byte item (null) consumes nothing: a count of 2^62 of them must not spin here */
    int empty_item = item->kind == K_NULL || (item->kind == K_FIXED && item->size == 0);
    for (;;) {
        long long count, size;
        if (read_varint(r, &count) < 0) return V_BAD;
        if (count == 0) return 0;
        if (count < 0) {
            count = (long long)(0 - (uint64_t)count); /* LLONG_MIN stays negative: no items, as in Cython */
            if (read_varint(r, &size) < 0) return V_BAD;
        }
        if (empty_item && n->kind == K_ARRAY) continue;
        for (long long i = 0; i < count; i++) {
            int rc;
            if (n->kind == K_MAP && (rc = skip_string(r, 1)) < 0) return rc;
            if ((rc = check(item, r)) < 0) return rc;
        }
    }
}

static int check(Node *n, Reader *r) {
    long long v;
    int rc = 0;
    switch (n->kind) {
    case K_NULL:
        return 0;
    case K_BOOLEAN:
        return skip_raw(r, 1);
    case K_INT:
    case K_LONG:
        if (read_varint(r, &v) < 0) return V_BAD;
        return (n->has_range && (v < n->lo || v > n->hi)) ? V_RANGE : 0;
    case K_FLOAT:
        return skip_raw(r, 4);
    case K_DOUBLE:
        return skip_raw(r, 8);
    case K_BYTES:
        return skip_string(r, 0);
    case K_STRING:
        return skip_string(r, 1);
    case K_FIXED:
        return skip_raw(r, n->size);
    case K_ENUM:
        if (read_varint(r, &v) < 0) return V_BAD;
        return (v < -n->nsymbols || v >= n->nsymbols) ? V_BAD : 0;
    case K_ARRAY:
    case K_MAP:
    case K_RECORD:
    case K_UNION:
        if (++r->depth > V_MAX_DEPTH) return V_BAD;
        if (n->kind == K_RECORD) {
            for (Py_ssize_t i = 0; i < n->n && rc == 0; i++) rc = check(n->fields[i].type, r);
        } else if (n->kind == K_UNION) {
            if (read_varint(r, &v) < 0) return V_BAD;
            if (v < -n->n || v >= n->n) return V_BAD;
            rc = check(n->branches[v < 0 ? v + n->n : v], r);
        } else {
            rc = check_blocks(n, r);
        }
        r->depth--;
        return rc;
    }
    return V_BAD;
}

/* Where the record starting at data[start] ends, or V_BAD / V_RANGE. */
static Py_ssize_t body_end(Encoder *self, const char *data, Py_ssize_t len, Py_ssize_t start) {
    if (start < 0 || start > len) return V_BAD;
    Reader r = {(const unsigned char *)data + start, (const unsigned char *)data + len, 0};
    int rc = check(&self->nodes[0], &r);
    return rc < 0 ? rc : (Py_ssize_t)((const char *)r.p - data);
}

/* body_end for any bytes-like object; -3 (with an exception) when it is not one. */
static Py_ssize_t body_end_of(Encoder *self, PyObject *o, Py_ssize_t start) {
    if (PyBytes_CheckExact(o)) return body_end(self, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), start);
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) return -3;
    Py_ssize_t end = body_end(self, view.buf, view.len, start);
    PyBuffer_Release(&view);
    return end;
}

PyDoc_STRVAR(end_doc,
             "end(data, start=0) -> int\n\n"
             "Offset where the Avro body starting at data[start] ends: -1 when fastavro's reader would\n"
             "refuse it, -2 when a value lies outside its node's range. Trailing bytes are not checked.");

static PyObject *Validator_end(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "end(data, start=0)");
        return NULL;
    }
    Py_ssize_t start = 0;
    if (nargs == 2 && (start = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()) return NULL;
    if (!self->nodes) {
        PyErr_SetString(PyExc_RuntimeError, "Validator not initialised");
        return NULL;
    }
    Py_ssize_t end = body_end_of(self, args[0], start);
    return end == -3 ? NULL : PyLong_FromSsize_t(end);
}

PyDoc_STRVAR(rejects_doc,
             "rejects(values: list, start: int) -> list[int]\n\n"
             "Indexes of the values whose bytes from `start` are not exactly one valid record\n"
             "(refused, out of range, trailing bytes, shorter than `start`, or not bytes at all).\n"
             "One call per container: the sink's per-record cost is this loop.");

static PyObject *Validator_rejects(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "rejects(values: list, start: int)");
        return NULL;
    }
    if (!self->nodes) {
        PyErr_SetString(PyExc_RuntimeError, "Validator not initialised");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    PyObject *values = args[0], *out = PyList_New(0);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        Py_ssize_t len = 0, end;
        if (PyBytes_CheckExact(v)) {
            len = PyBytes_GET_SIZE(v);
            end = body_end(self, PyBytes_AS_STRING(v), len, start);
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0) {
                PyErr_Clear(); /* None or anything else: refused, the serde names why */
                end = V_BAD;
            } else {
                len = view.len;
                end = body_end(self, view.buf, len, start);
                PyBuffer_Release(&view);
            }
        }
        if (end != len) {
            PyObject *idx = PyLong_FromSsize_t(i);
            if (!idx || PyList_Append(out, idx) < 0) {
                Py_XDECREF(idx);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(idx);
        }
    }
    return out;
}

static PyMethodDef Validator_methods[] = {
    {"end", (PyCFunction)(void (*)(void))Validator_end, METH_FASTCALL, end_doc},
    {"rejects", (PyCFunction)(void (*)(void))Validator_rejects, METH_FASTCALL, rejects_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ValidatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hfloop.events.native._avroenc.Validator",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Validator(program): accepts an Avro body exactly when fastavro's reader does."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Validator_methods,
};

/* --- the interaction sender: FeedbackClient.log_interaction without a Python frame ------- */

/* Why: after the native encoder, binding log_interaction's dozen keywords in Python and
   building the 20-field record dict cost ~1.5 us per call, twice a raw produce(). This type
   is the same call in C: it binds the arguments, fills the defaults, makes the ids and the
   timestamp, writes the Avro body straight from the arguments with the same encoder nodes
   (so the same bytes as encoding the record dict), and produces.
   It handles only what it can reproduce exactly (exact str/int/float/list/dict/None as the
   Python builder would pass them through; see sdk/events.py's interaction_record). For
   anything else (an unknown or duplicate keyword, wait=True, a tuple of messages, a str
   subclass, a value the encoder declines) it calls the Python method it stands in for, with
   the very same arguments, before anything was produced: that path raises or sends exactly
   as it always did. */

enum {
    A_AGENT_ID, A_PROMPT, A_RESPONSE, A_WAIT, A_INTERACTION_ID, A_SESSION_ID, A_USER_ID,
    A_AGENT_VERSION, A_MODEL_ID, A_ROUTE, A_RETRIEVED, A_MEMORY, A_LATENCY, A_PROMPT_TOKENS,
    A_COMPLETION_TOKENS, A_METADATA, A_TRACE_ID, A_PARENT, A_EVENT_TIME, A_EVENT_ID, N_ARGS
};
#define N_POSITIONAL 3 /* agent_id, prompt, response */
static const char *ARG_NAMES[N_ARGS] = {
    "agent_id", "prompt", "response", "wait", "interaction_id", "session_id", "user_id",
    "agent_version", "model_id", "route", "retrieved_doc_ids", "memory_ids_used", "latency_ms",
    "prompt_tokens", "completion_tokens", "metadata", "trace_id", "parent_interaction_id",
    "event_time", "event_id"
};
static PyObject *ARG_KEYS[N_ARGS]; /* interned */

/* The record's fields; each is an argument of the same name, except these, derived: */
enum { R_TENANT_ID = N_ARGS, R_MESSAGES, N_VALUES };
#define R_ARG_FIELDS 17 /* record fields named after an argument (all but prompt, wait) */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *encoder;  /* the Interaction Encoder (owns the nodes below) */
    PyObject *header, *tenant_id, *topic;
    PyObject *produce, *poll, *when_full, *fallback, *ids;
    PyObject *defaults[N_ARGS];       /* NULL for the positional ones */
    PyObject *empty_list, *empty_dict, *user, *zero, *prefix_key, *counter_key;
    int source[N_VALUES];             /* record field i (schema order) takes value source[i] */
    Py_ssize_t nfields;
    Node *root;
    Py_ssize_t poll_every, sends, fallbacks;
} Sender;

static PyObject *Sender_fallback(Sender *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    self->fallbacks++;
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

/* A fresh event id, as sdk/events.py's _Ids.new writes it: ids.prefix + 16 hex digits of
   next(ids.counter). Reads the attributes per call: a forked child redraws both. */
static PyObject *new_id(Sender *self) {
    PyObject *prefix = PyObject_GetAttr(self->ids, self->prefix_key);
    if (!prefix) return NULL;
    PyObject *counter = PyObject_GetAttr(self->ids, self->counter_key), *n = NULL, *out = NULL;
    if (counter && (n = PyIter_Next(counter)) != NULL) {
        unsigned long long v = PyLong_AsUnsignedLongLong(n);
        if (!(v == (unsigned long long)-1 && PyErr_Occurred()) && PyUnicode_CheckExact(prefix) &&
            PyUnicode_IS_COMPACT_ASCII(prefix) && PyUnicode_GET_LENGTH(prefix) == 16) {
            out = PyUnicode_New(32, 127);
            if (out) {
                char *p = (char *)PyUnicode_DATA(out);
                memcpy(p, PyUnicode_DATA(prefix), 16);
                static const char hex[] = "0123456789abcdef";
                for (int i = 15; i >= 0; i--, v >>= 4) p[16 + i] = hex[v & 0xF];
            }
        } else if (!PyErr_Occurred()) {
            PyErr_SetString(Unsupported, "id prefix is not 16 ASCII characters");
        }
    } else if (counter && !PyErr_Occurred()) {
        PyErr_SetString(Unsupported, "id counter exhausted");
    }
    Py_XDECREF(n);
    Py_XDECREF(counter);
    Py_DECREF(prefix);
    return out;
}

/* time.time_ns() // 1_000_000: the same clock (CLOCK_REALTIME) Python reads. */
static PyObject *now_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    long long ms = ns / 1000000LL - ((ns % 1000000LL) < 0); /* floor division */
    return PyLong_FromLongLong(ms);
}

static int is_empty_or_none(PyObject *o) {
    return o == Py_None || (PyUnicode_CheckExact(o) && PyUnicode_GET_LENGTH(o) == 0);
}

static PyObject *Sender_vectorcall(Sender *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[N_ARGS] = {NULL};
    if (!self->root) {
        PyErr_SetString(PyExc_RuntimeError, "InteractionSender not initialised");
        return NULL;
    }
    if (nargs > N_POSITIONAL) return Sender_fallback(self, args, nargsf, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++) a[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int at = -1;
        for (int j = 0; j < N_ARGS && at < 0; j++)
            if (name == ARG_KEYS[j]) at = j;
        for (int j = 0; j < N_ARGS && at < 0; j++) {
            int eq = PyUnicode_Compare(name, ARG_KEYS[j]);
            if (eq == -1 && PyErr_Occurred()) PyErr_Clear();
            if (eq == 0) at = j;
        }
        if (at < 0 || a[at]) return Sender_fallback(self, args, nargsf, kwnames); /* unknown, twice */
        a[at] = args[nargs + k];
    }
    for (int j = 0; j < N_ARGS; j++) {
        if (a[j]) continue;
        if (!self->defaults[j]) return Sender_fallback(self, args, nargsf, kwnames); /* missing */
        a[j] = self->defaults[j];
    }
    if (a[A_WAIT] != Py_False) return Sender_fallback(self, args, nargsf, kwnames);

    /* Values of the record, as interaction_record derives them; owned references. */
    PyObject *v[N_VALUES] = {NULL}, *value = NULL, *key = NULL, *result = NULL;
    int declined = 1;
    for (int j = 0; j < N_ARGS; j++) {
        v[j] = a[j];
        Py_INCREF(v[j]);
    }
    v[R_TENANT_ID] = Py_NewRef(self->tenant_id);
    PyObject *o;
#define REPLACE(slot, expr) do { PyObject *_n = (expr); if (!_n) goto decline; Py_SETREF(v[slot], _n); } while (0)
    /* interaction_id or _id(), then event_id or _id(): the ids in the Python builder's order */
    o = a[A_INTERACTION_ID];
    if (is_empty_or_none(o)) REPLACE(A_INTERACTION_ID, new_id(self));
    else if (!PyUnicode_CheckExact(o)) goto decline;
    o = a[A_EVENT_ID];
    if (is_empty_or_none(o)) REPLACE(A_EVENT_ID, new_id(self));
    else if (!PyUnicode_CheckExact(o)) goto decline;
    o = a[A_SESSION_ID];
    if (is_empty_or_none(o)) REPLACE(A_SESSION_ID, Py_NewRef(v[A_INTERACTION_ID]));
    else if (!PyUnicode_CheckExact(o)) goto decline;
    o = a[A_EVENT_TIME];
    if (o == Py_None || (PyLong_CheckExact(o) && PyObject_IsTrue(o) == 0)) REPLACE(A_EVENT_TIME, now_ms());
    else if (!PyLong_CheckExact(o)) goto decline;
    for (int j = A_RETRIEVED; j <= A_MEMORY; j++) {
        o = a[j];
        if (PyTuple_CheckExact(o))
            REPLACE(j, PyTuple_GET_SIZE(o) ? PySequence_List(o) : Py_NewRef(self->empty_list));
        else if (!PyList_CheckExact(o)) goto decline;
    }
    o = a[A_LATENCY];
    if (PyLong_CheckExact(o)) {
        double d = PyLong_AsDouble(o);
        if (d == -1.0 && PyErr_Occurred()) goto decline;
        REPLACE(A_LATENCY, PyFloat_FromDouble(d));
    } else if (!PyFloat_CheckExact(o)) {
        goto decline;
    }
    if (!PyLong_CheckExact(a[A_PROMPT_TOKENS]) || !PyLong_CheckExact(a[A_COMPLETION_TOKENS])) goto decline;
    o = a[A_METADATA];
    if (o == Py_None) REPLACE(A_METADATA, Py_NewRef(self->empty_dict));
    else if (!PyDict_CheckExact(o)) goto decline;
    o = a[A_PROMPT];
    if (!PyUnicode_CheckExact(o) && !PyList_CheckExact(o)) goto decline;

    char stack[STACK_BYTES];
    Buf b = {stack, 0, STACK_BYTES, 0};
    int rc = put_raw(&b, PyBytes_AS_STRING(self->header), PyBytes_GET_SIZE(self->header));
    for (Py_ssize_t i = 0; i < self->nfields && rc == 0; i++) {
        Node *t = self->root->fields[i].type;
        int s = self->source[i];
        if (s != R_MESSAGES) {
            rc = encode(t, v[s], &b);
        } else if (PyList_CheckExact(o)) {
            rc = encode(t, o, &b); /* the caller's dicts: the encoder takes exact dicts of strs only */
        } else { /* a str: [{"role": "user", "content": prompt}] */
            Node *msg = t->child;
            rc = put_long(&b, 1);
            if (rc == 0) rc = encode(msg->fields[0].type, self->user, &b);
            if (rc == 0) rc = encode(msg->fields[1].type, o, &b);
            if (rc == 0) rc = put_long(&b, 0);
        }
    }
    if (rc == 0) value = PyBytes_FromStringAndSize(b.data, b.len);
    if (b.on_heap) PyMem_Free(b.data);
    if (!value) goto decline;
    key = PyUnicode_AsUTF8String(v[A_INTERACTION_ID]); /* key_of: str(interaction_id).encode() */
    if (!key) goto decline;
    declined = 0;

    /* From here on the record is being sent: errors propagate as from RecordProducer.send_fast. */
    PyObject *pargs[3] = {self->topic, value, key};
    PyObject *r = PyObject_Vectorcall(self->produce, pargs, 3, NULL);
    if (!r && PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear(); /* local queue full: the Python side serves reports until there is room */
        r = PyObject_Vectorcall(self->when_full, pargs, 3, NULL);
    }
    if (!r) goto done;
    Py_DECREF(r);
    if (++self->sends % self->poll_every == 0) {
        r = PyObject_Vectorcall(self->poll, &self->zero, 1, NULL);
        if (!r) goto done;
        Py_DECREF(r);
    }
    result = Py_NewRef(v[A_INTERACTION_ID]);
    goto done;
#undef REPLACE
decline:
    PyErr_Clear(); /* whatever it was, the Python path raises it again or handles it */
done:
    Py_XDECREF(value);
    Py_XDECREF(key);
    for (int j = 0; j < N_VALUES; j++) Py_XDECREF(v[j]);
    if (declined) return Sender_fallback(self, args, nargsf, kwnames);
    return result;
}

static int Sender_traverse(Sender *self, visitproc visit, void *arg) {
    Py_VISIT(self->encoder);
    Py_VISIT(self->produce);
    Py_VISIT(self->poll);
    Py_VISIT(self->when_full);
    Py_VISIT(self->fallback);
    Py_VISIT(self->ids);
    for (int j = 0; j < N_ARGS; j++) Py_VISIT(self->defaults[j]);
    return 0;
}

static int Sender_clear(Sender *self) {
    self->root = NULL;
    self->nfields = 0;
    Py_CLEAR(self->encoder);
    Py_CLEAR(self->header);
    Py_CLEAR(self->tenant_id);
    Py_CLEAR(self->topic);
    Py_CLEAR(self->produce);
    Py_CLEAR(self->poll);
    Py_CLEAR(self->when_full);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->ids);
    for (int j = 0; j < N_ARGS; j++) Py_CLEAR(self->defaults[j]);
    Py_CLEAR(self->empty_list);
    Py_CLEAR(self->empty_dict);
    Py_CLEAR(self->user);
    Py_CLEAR(self->zero);
    Py_CLEAR(self->prefix_key);
    Py_CLEAR(self->counter_key);
    return 0;
}

static void Sender_dealloc(Sender *self) {
    PyObject_GC_UnTrack(self);
    Sender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int field_named(Node *record, Py_ssize_t i, const char *name) {
    return i < record->n && PyUnicode_CompareWithASCIIString(record->fields[i].name, name) == 0;
}

/* Map the Interaction record's fields to the call's values; refuse any other shape. */
static int plan_fields(Sender *self, Node *root) {
    if (root->kind != K_RECORD || root->n != R_ARG_FIELDS + 3) {
        PyErr_SetString(PyExc_ValueError, "not the Interaction record this sender writes");
        return -1;
    }
    int seen[N_VALUES] = {0};
    for (Py_ssize_t i = 0; i < root->n; i++) {
        int s = -1;
        if (field_named(root, i, "tenant_id")) s = R_TENANT_ID;
        else if (field_named(root, i, "messages")) s = R_MESSAGES;
        for (int j = 0; j < N_ARGS && s < 0; j++)
            if (j != A_PROMPT && j != A_WAIT && field_named(root, i, ARG_NAMES[j])) s = j;
        if (s < 0 || seen[s]++) {
            PyErr_Format(PyExc_ValueError, "Interaction field %U: not one this sender writes", root->fields[i].name);
            return -1;
        }
        self->source[i] = s;
        if (s == R_MESSAGES) {
            Node *t = root->fields[i].type, *m = t->kind == K_ARRAY ? t->child : NULL;
            if (!m || m->kind != K_RECORD || m->n != 2 || !field_named(m, 0, "role") || !field_named(m, 1, "content")) {
                PyErr_SetString(PyExc_ValueError, "messages are not an array of (role, content) records");
                return -1;
            }
        }
    }
    self->root = root;
    self->nfields = root->n;
    return 0;
}

static int Sender_init(Sender *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"encoder", "header", "tenant_id", "topic", "produce", "poll", "when_full",
                             "fallback", "ids", "defaults", "poll_every", NULL};
    PyObject *encoder, *header, *tenant_id, *topic, *produce, *poll, *when_full, *fallback, *ids, *defaults;
    Py_ssize_t poll_every;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!UUOOOOOO!n", kwlist, &EncoderType, &encoder, &PyBytes_Type,
                                     &header, &tenant_id, &topic, &produce, &poll, &when_full, &fallback, &ids,
                                     &PyDict_Type, &defaults, &poll_every))
        return -1;
    if (poll_every < 1) {
        PyErr_SetString(PyExc_ValueError, "poll_every must be >= 1");
        return -1;
    }
    if (!PyUnicode_CheckExact(tenant_id)) {
        PyErr_SetString(PyExc_TypeError, "tenant_id must be a str");
        return -1;
    }
    Encoder *enc = (Encoder *)encoder;
    if (!enc->nodes) {
        PyErr_SetString(PyExc_RuntimeError, "Encoder not initialised");
        return -1;
    }
    Sender_clear(self);
    if (plan_fields(self, &enc->nodes[0]) < 0) return -1;
    /* The Python signature's defaults, by name: exactly the keyword parameters known here. */
    if (PyDict_GET_SIZE(defaults) != N_ARGS - N_POSITIONAL) {
        PyErr_SetString(PyExc_ValueError, "defaults must name exactly log_interaction's keyword parameters");
        return -1;
    }
    for (int j = N_POSITIONAL; j < N_ARGS; j++) {
        PyObject *d = PyDict_GetItemWithError(defaults, ARG_KEYS[j]);
        if (!d) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "no default for %s", ARG_NAMES[j]);
            return -1;
        }
        self->defaults[j] = Py_NewRef(d);
    }
    self->encoder = Py_NewRef(encoder);
    self->header = Py_NewRef(header);
    self->tenant_id = Py_NewRef(tenant_id);
    self->topic = Py_NewRef(topic);
    self->produce = Py_NewRef(produce);
    self->poll = Py_NewRef(poll);
    self->when_full = Py_NewRef(when_full);
    self->fallback = Py_NewRef(fallback);
    self->ids = Py_NewRef(ids);
    self->poll_every = poll_every;
    self->empty_list = PyList_New(0);
    self->empty_dict = PyDict_New();
    self->user = PyUnicode_InternFromString("user");
    self->zero = PyLong_FromLong(0);
    self->prefix_key = PyUnicode_InternFromString("prefix");
    self->counter_key = PyUnicode_InternFromString("counter");
    if (!self->empty_list || !self->empty_dict || !self->user || !self->zero || !self->prefix_key ||
        !self->counter_key)
        return -1;
    self->vectorcall = (vectorcallfunc)Sender_vectorcall;
    return 0;
}

static PyObject *Sender_forward(Sender *self, void *name) {
    if (!self->fallback) Py_RETURN_NONE;
    return PyObject_GetAttrString(self->fallback, (const char *)name);
}

static PyGetSetDef Sender_getset[] = {
    {"__doc__", (getter)Sender_forward, NULL, NULL, "__doc__"},
    {"__name__", (getter)Sender_forward, NULL, NULL, "__name__"},
    {"__qualname__", (getter)Sender_forward, NULL, NULL, "__qualname__"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Sender_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(Sender, fallback), READONLY, "the Python method this stands in for"},
    {"sends", T_PYSSIZET, offsetof(Sender, sends), READONLY, "records produced by this sender"},
    {"fallbacks", T_PYSSIZET, offsetof(Sender, fallbacks), READONLY, "calls handed to the Python method"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hfloop.events.native._avroenc.InteractionSender",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_traverse = (traverseproc)Sender_traverse,
    .tp_clear = (inquiry)Sender_clear,
    .tp_vectorcall_offset = offsetof(Sender, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_getset = Sender_getset,
    .tp_members = Sender_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_avroenc", "Avro binary encoder, interaction sender and skip-validator (see services/hfloop/events/native).", -1, NULL,
};

PyMODINIT_FUNC PyInit__avroenc(void) {
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&ValidatorType) < 0 || PyType_Ready(&SenderType) < 0)
        return NULL;
    for (int j = 0; j < N_ARGS; j++)
        if (!(ARG_KEYS[j] = PyUnicode_InternFromString(ARG_NAMES[j]))) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Unsupported = PyErr_NewException("hfloop.events.native._avroenc.Unsupported", PyExc_ValueError, NULL);
    TYPE_KEY = PyUnicode_InternFromString("-type");
    if (!Unsupported || !TYPE_KEY || PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0 ||
        PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "Validator", (PyObject *)&ValidatorType) < 0 ||
        PyModule_AddObjectRef(m, "InteractionSender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddStringConstant(m, "SOURCE_HASH", HFLOOP_SOURCE_HASH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
