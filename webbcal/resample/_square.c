/*
 * webbcal.resample._square: drizzle's square kernel applied to several image planes at once.
 *
 * Resampling SCI and the three sqrt(VAR_*) planes of one exposure with
 * drizzle.cdrizzle.tdriz costs four passes over the same geometry (corner
 * interpolation, jacobian, pixel/quadrilateral overlap).  Here every overlap is
 * computed once and used for all planes:
 *
 *   group 1: data -> out_data, weighted by out_wht, context bit OR-ed into out_ctx;
 *   group 2: K extra planes -> K outputs sharing one counts array extra_wht.
 *
 * Both groups receive the same weight (dow) per overlap, each keeps its own running
 * weighted mean.  The arithmetic (which operations are float and which double, and in
 * which order) follows drizzle 2.2.0 so that every plane is bit-identical to a separate
 * tdriz call.  Build with -ffp-contract=off: a fused multiply-add would change bits.
 *
 * Only the buffer protocol is used (no numpy headers).  Only the case where the whole
 * input box maps inside the output frame is handled (see scan_box); the Python wrapper
 * falls back to drizzle otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* drizzle's min/max helpers start from these values (note: the "min double" is the
 * smallest positive one, so a quadrilateral entirely at negative y still visits row 0). */
#define START_OF_MIN 1.7976931348623158e+308
#define START_OF_MAX 2.2250738585072014e-308

static PyObject *UnsupportedError;

/* ------------------------------------------------------------------ geometry */

typedef struct {
    const double *pixmap; /* (ny, nx, 2): output x, y of every input pixel centre */
    int nx, ny;
} PixelMap;

typedef struct {
    int xmin, xmax, ymin, ymax; /* inclusive input pixel limits */
} Box;

static inline const double *
map_entry(const PixelMap *map, int i, int j)
{
    return map->pixmap + 2 * ((size_t) j * (size_t) map->nx + (size_t) i);
}

static inline int
entry_is_valid(const double *entry)
{
    return !(isnan(entry[0]) || isnan(entry[1]));
}

/* Bilinear interpolation of the map at a fractional input position; the four
 * surrounding centres are clamped to the map so points near the edge extrapolate.
 * Returns 1 when the result is NaN. */
static int
map_fractional_point(const PixelMap *map, double xin, double yin, double *xout, double *yout)
{
    int i0 = (int) xin;
    int j0 = (int) yin;
    const int last_i = map->nx - 2;
    const int last_j = map->ny - 2;

    if (i0 < 0) {
        i0 = 0;
    } else if (i0 > last_i) {
        i0 = last_i;
    }
    if (j0 < 0) {
        j0 = 0;
    } else if (j0 > last_j) {
        j0 = last_j;
    }

    const double fx = xin - i0, fy = yin - j0;
    const double gx = 1.0 - fx, gy = 1.0 - fy;
    const double *low_left = map_entry(map, i0, j0);
    const double *low_right = map_entry(map, i0 + 1, j0);
    const double *up_left = map_entry(map, i0, j0 + 1);
    const double *up_right = map_entry(map, i0 + 1, j0 + 1);

    *xout = low_left[0] * gx * gy + low_right[0] * fx * gy + up_left[0] * gx * fy +
            up_right[0] * fx * fy;
    *yout = low_left[1] * gx * gy + low_right[1] * fx * gy + up_left[1] * gx * fy +
            up_right[1] * fx * fy;
    return isnan(*xout) || isnan(*yout);
}

/* Corners of the pixel (i, j) shrunk to half-side h, for pixels with all eight
 * neighbours in the map: each corner is the bilinear mix of the 2x2 centres around it,
 * written as sums of the 3x3 neighbourhood pre-multiplied by the bilinear factors
 * (drizzle's shortcut; it rounds differently from map_fractional_point, so which one
 * is used must match drizzle's choice).  Corner order: (-h,+h) (+h,+h) (+h,-h) (-h,-h).
 * Returns 1 when any coordinate is NaN. */
static int
map_inner_pixel_corners(const PixelMap *map, int i, int j, double h, double xc[4], double yc[4])
{
    const double centre = (1 - h) * (1 - h);
    const double side = (1 - h) * h;
    const double diagonal = h * h;
    double fx[3][3], fy[3][3]; /* [dx][dy], offsets -1..1 stored as 0..2 */

    for (int dy = 0; dy <= 2; ++dy) {
        for (int dx = 0; dx <= 2; ++dx) {
            const double *entry = map_entry(map, i - 1 + dx, j - 1 + dy);
            double factor;
            if (dx == 1 && dy == 1) {
                factor = centre;
            } else if (dx == 1 || dy == 1) {
                factor = side;
            } else {
                factor = diagonal;
            }
            fx[dx][dy] = entry[0] * factor;
            fy[dx][dy] = entry[1] * factor;
        }
    }

    xc[0] = fx[0][1] + fx[1][1] + fx[0][2] + fx[1][2];
    yc[0] = fy[0][1] + fy[1][1] + fy[0][2] + fy[1][2];
    xc[1] = fx[1][1] + fx[2][1] + fx[1][2] + fx[2][2];
    yc[1] = fy[1][1] + fy[2][1] + fy[1][2] + fy[2][2];
    xc[2] = fx[1][0] + fx[2][0] + fx[1][1] + fx[2][1];
    yc[2] = fy[1][0] + fy[2][0] + fy[1][1] + fy[2][1];
    xc[3] = fx[0][0] + fx[1][0] + fx[0][1] + fx[1][1];
    yc[3] = fy[0][0] + fy[1][0] + fy[0][1] + fy[1][1];

    for (int k = 0; k < 4; ++k) {
        if (isnan(xc[k]) || isnan(yc[k])) {
            return 1;
        }
    }
    return 0;
}

/* Output-frame corners of input pixel (i, j) shrunk to half-side h, with drizzle's
 * choice between the 3x3 shortcut (strictly inside the map) and plain interpolation. */
static int
map_pixel_corners(const PixelMap *map, int i, int j, double h, double xc[4], double yc[4])
{
    if (i > 0 && i < map->nx - 2 && j > 0 && j < map->ny - 2) {
        return map_inner_pixel_corners(map, i, j, h, xc, yc);
    }
    const double left = (double) i - h, right = (double) i + h;
    const double top = (double) j + h, bottom = (double) j - h;
    const double xin[4] = {left, right, right, left};
    const double yin[4] = {top, top, bottom, bottom};
    for (int k = 0; k < 4; ++k) {
        if (map_fractional_point(map, xin[k], yin[k], xc + k, yc + k)) {
            return 1;
        }
    }
    return 0;
}

/* Signed area between the segment (x1,y1)-(x2,y2) and the x axis, restricted to the
 * unit square [0,1]x[0,1]; summing it over a closed polygon gives the overlap area. */
static inline double
segment_area_in_unit_square(double x1, double y1, double x2, double y2)
{
    const double dx = x2 - x1;
    const double dy = y2 - y1;

    if (dx == 0) {
        return 0.0; /* vertical segments enclose nothing */
    }

    double direction, xlo, xhi;
    if (dx < 0) {
        direction = -1.0;
        xlo = x2;
        xhi = x1;
    } else {
        direction = 1.0;
        xlo = x1;
        xhi = x2;
    }
    if (xlo >= 1.0 || xhi <= 0.0) {
        return 0.0;
    }
    xlo = (xlo > 0.0) ? xlo : 0.0;
    xhi = (xhi < 1.0) ? xhi : 1.0;

    const double slope = dy / dx;
    double ylo = y1 + slope * (xlo - x1);
    double yhi = y1 + slope * (xhi - x1);

    if (ylo <= 0.0 && yhi <= 0.0) {
        return 0.0; /* below the square */
    }
    if (ylo >= 1.0 && yhi >= 1.0) {
        return direction * (xhi - xlo); /* above: the full column height */
    }

    const double cross = x1 * y2 - y1 * x2;
    if (ylo < 0.0) { /* cut off the part below the axis */
        ylo = 0.0;
        xlo = cross / dy;
    }
    if (yhi < 0.0) {
        yhi = 0.0;
        xhi = cross / dy;
    }

    if (ylo <= 1.0) {
        if (yhi <= 1.0) {
            return direction * 0.5 * (xhi - xlo) * (yhi + ylo); /* inside: a trapezoid */
        }
        const double xtop = (dx + cross) / dy; /* leaves through the top */
        return direction * (0.5 * (xtop - xlo) * (1.0 + ylo) + xhi - xtop);
    }
    const double xtop = (dx + cross) / dy; /* enters through the top */
    return direction * (0.5 * (xhi - xtop) * (1.0 + yhi) + xtop - xlo);
}

/* Area common to the quadrilateral (xc, yc) and output pixel (ii, jj); its sign
 * follows the quadrilateral's orientation, like the jacobian's. */
static inline double
pixel_overlap(int ii, int jj, const double xc[4], const double yc[4])
{
    const double x0 = (double) ii - 0.5;
    const double y0 = (double) jj - 0.5;
    double px[4], py[4];
    for (int k = 0; k < 4; ++k) {
        px[k] = xc[k] - x0;
        py[k] = yc[k] - y0;
    }
    double sum = 0.0;
    for (int k = 0; k < 4; ++k) {
        sum += segment_area_in_unit_square(px[k], py[k], px[(k + 1) & 3], py[(k + 1) & 3]);
    }
    return sum;
}

/* ------------------------------------------------------------------ input box */

/* tdriz's limits: xmax/ymax of 0 or past the edge mean "to the edge"; then the box is
 * shrunk to the valid (non-NaN) part of the map.  Returns 1 when too few pixels remain. */
static int
settle_input_box(const PixelMap *map, Box *box)
{
    if (box->xmax == 0 || box->xmax >= map->nx) {
        box->xmax = map->nx - 1;
    }
    if (box->ymax == 0 || box->ymax >= map->ny) {
        box->ymax = map->ny - 1;
    }

    /* Lowest row / leftmost column holding a valid entry (first valid entry of each row). */
    int imin = box->xmax, jmin = box->ymax;
    for (int j = box->ymin; j <= box->ymax; ++j) {
        for (int i = box->xmin; i <= box->xmax; ++i) {
            if (entry_is_valid(map_entry(map, i, j))) {
                if (i < imin) {
                    imin = i;
                }
                if (j < jmin) {
                    jmin = j;
                }
                break;
            }
        }
    }
    /* Highest row / rightmost column, scanning each row from the right. */
    int imax = imin, jmax = jmin;
    for (int j = box->ymax; j >= box->ymin; --j) {
        for (int i = box->xmax; i >= box->xmin; --i) {
            if (entry_is_valid(map_entry(map, i, j))) {
                if (i > imax) {
                    imax = i;
                }
                if (j > jmax) {
                    jmax = j;
                }
                break;
            }
        }
    }
    box->xmin = imin;
    box->xmax = imax;
    box->ymin = jmin;
    box->ymax = jmax;
    return imin >= imax || jmin >= jmax;
}

/* Whether drizzle's scanner visits every pixel of the box: true when the box outline,
 * mapped through its corners, lies strictly inside the output frame (no clipping), and
 * also when a corner cannot be mapped (drizzle then scans the unmapped box). */
static int
box_scanned_whole(const PixelMap *map, const Box *box, int out_nx, int out_ny)
{
    const double left = box->xmin - 0.5, right = box->xmax + 0.5;
    const double bottom = box->ymin - 0.5, top = box->ymax + 0.5;
    const double xin[4] = {left, right, right, left};
    const double yin[4] = {bottom, bottom, top, top};
    const double margin = 1e-9;
    int inside = 1;

    for (int k = 0; k < 4; ++k) {
        double x, y;
        if (map_fractional_point(map, xin[k], yin[k], &x, &y)) {
            return 1;
        }
        if (!(x > -0.5 + margin && x < out_nx - 0.5 - margin && y > -0.5 + margin &&
              y < out_ny - 0.5 - margin)) {
            inside = 0;
        }
    }
    return inside;
}

/* ------------------------------------------------------------------ the kernel */

typedef struct {
    PixelMap map;
    Box box;
    const float *data;
    const float *weights; /* NULL: all ones */
    float iscale, weight_scale;
    double half_side; /* pixfrac / 2 */

    int out_nx, out_ny;
    float *out_data, *out_wht;
    int32_t *out_ctx; /* NULL: no context */
    int32_t ctx_bit;

    int n_extra;
    const float **extra_data;
    float **extra_out;
    float *extra_wht;
    float *extra_values; /* scratch: the K scaled input values of the current pixel */

    int fill, extra_fill;
    float fill_value, extra_fill_value;
} SquareJob;

/* drizzle's running weighted mean of one output pixel: the sum of weights is a float,
 * the mean is computed in float and divided in double. */
static inline void
blend(float *out, float previous_weight, float new_weight, float dow, float value)
{
    if (previous_weight == 0.0f) {
        *out = value;
    } else {
        const float numerator = *out * previous_weight + dow * value;
        *out = (float) ((double) numerator / (double) new_weight);
    }
}

static inline void
add_to_output_pixel(SquareJob *job, size_t o, float dow, float value)
{
    if (job->out_ctx && dow > 0.0f) {
        job->out_ctx[o] |= job->ctx_bit;
    }
    if (dow == 0.0f) {
        return;
    }

    const float weight = job->out_wht[o];
    const float new_weight = weight + dow;
    blend(job->out_data + o, weight, new_weight, dow, value);
    job->out_wht[o] = new_weight;

    if (job->n_extra) {
        const float extra_weight = job->extra_wht[o];
        const float extra_new_weight = extra_weight + dow;
        for (int k = 0; k < job->n_extra; ++k) {
            blend(job->extra_out[k] + o, extra_weight, extra_new_weight, dow,
                  job->extra_values[k]);
        }
        job->extra_wht[o] = extra_new_weight;
    }
}

static inline int
round_to_int(double x)
{
    return (int) round(x);
}

/* Spreads one input pixel over the output pixels its quadrilateral overlaps.
 * Returns the number of overlapped output pixels. */
static long
drizzle_pixel(SquareJob *job, int i, int j)
{
    double xc[4], yc[4];
    if (map_pixel_corners(&job->map, i, j, job->half_side, xc, yc)) {
        return 0;
    }

    /* Dividing by the (signed) jacobian keeps the total weight independent of the
     * output pixel size and cancels the sign of the overlap areas. */
    const double jacobian =
        0.5 * ((xc[1] - xc[3]) * (yc[0] - yc[2]) - (xc[0] - xc[2]) * (yc[1] - yc[3]));
    const size_t p = (size_t) j * (size_t) job->map.nx + (size_t) i;
    const float value = job->data[p] * job->iscale;
    for (int k = 0; k < job->n_extra; ++k) {
        job->extra_values[k] = job->extra_data[k][p] * job->iscale;
    }
    const float weight = job->weights ? job->weights[p] : 1.0f;
    const double w = (weight * job->weight_scale) / jacobian;

    double ymin = START_OF_MIN, ymax = START_OF_MAX, xmin = START_OF_MIN, xmax = START_OF_MAX;
    for (int k = 0; k < 4; ++k) {
        if (yc[k] < ymin) ymin = yc[k];
        if (yc[k] > ymax) ymax = yc[k];
        if (xc[k] < xmin) xmin = xc[k];
        if (xc[k] > xmax) xmax = xc[k];
    }
    const int jj_first = Py_MAX(round_to_int(ymin), 0);
    const int jj_last = Py_MIN(round_to_int(ymax), job->out_ny - 1);
    const int ii_first = Py_MAX(round_to_int(xmin), 0);
    const int ii_last = Py_MIN(round_to_int(xmax), job->out_nx - 1);

    long hits = 0;
    for (int jj = jj_first; jj <= jj_last; ++jj) {
        for (int ii = ii_first; ii <= ii_last; ++ii) {
            const double overlap = pixel_overlap(ii, jj, xc, yc);
            if (overlap != 0.0) {
                ++hits;
                const size_t o = (size_t) jj * (size_t) job->out_nx + (size_t) ii;
                add_to_output_pixel(job, o, (float) (overlap * w), value);
            }
        }
    }
    return hits;
}

static void
fill_empty(float *out, const float *wht, size_t n, float value)
{
    for (size_t o = 0; o < n; ++o) {
        if (wht[o] == 0.0f) {
            out[o] = value;
        }
    }
}

/* Drizzles the whole box; returns drizzle's miss count (its per-row term is -1 for a
 * fully scanned row, reproduced so the counts match tdriz's). */
static long
run_job(SquareJob *job)
{
    long misses = 0;
    for (int j = job->box.ymin; j <= job->box.ymax; ++j) {
        misses += -1;
        for (int i = job->box.xmin; i <= job->box.xmax; ++i) {
            if (drizzle_pixel(job, i, j) == 0) {
                ++misses;
            }
        }
    }
    const size_t n = (size_t) job->out_nx * (size_t) job->out_ny;
    if (job->fill) {
        fill_empty(job->out_data, job->out_wht, n, job->fill_value);
    }
    if (job->n_extra && job->extra_fill) {
        for (int k = 0; k < job->n_extra; ++k) {
            fill_empty(job->extra_out[k], job->extra_wht, n, job->extra_fill_value);
        }
    }
    return misses;
}

/* ------------------------------------------------------------------ buffers */

/* Buffers held for the duration of one call. */
typedef struct {
    Py_buffer *views;
    int count, capacity;
} BufferSet;

static void
release_all(BufferSet *set)
{
    for (int k = 0; k < set->count; ++k) {
        PyBuffer_Release(set->views + k);
    }
    PyMem_Free(set->views);
    set->views = NULL;
    set->count = set->capacity = 0;
}

/* True when a struct-module format string means `code` in native byte order. */
static int
format_is(const char *format, char code)
{
    if (format == NULL) {
        return code == 'B';
    }
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        ++format;
    }
    return format[0] == code && format[1] == '\0';
}

/* Gets a C-contiguous buffer of the given element type and shape (dims[k] < 0: any);
 * the actual shape is written back to dims.  Returns NULL with an exception set. */
static void *
acquire(BufferSet *set, PyObject *obj, const char *name, char code, Py_ssize_t itemsize,
        int ndim, Py_ssize_t *dims, int writable)
{
    if (set->count == set->capacity) {
        int capacity = set->capacity ? 2 * set->capacity : 16;
        Py_buffer *grown = PyMem_Realloc(set->views, (size_t) capacity * sizeof(Py_buffer));
        if (!grown) {
            PyErr_NoMemory();
            return NULL;
        }
        set->views = grown;
        set->capacity = capacity;
    }
    Py_buffer *view = set->views + set->count;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "'%s' must be a C-contiguous%s array (%s)", name,
                     writable ? ", writable" : "", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    set->count++;

    const char *kind = code == 'f' ? "float32" : code == 'd' ? "float64" : "int32";
    if (view->itemsize != itemsize || !format_is(view->format, code)) {
        PyErr_Format(PyExc_TypeError, "'%s' must be %s, got format '%s'", name, kind,
                     view->format ? view->format : "B");
        return NULL;
    }
    if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "'%s' must have %d dimensions, got %d", name, ndim,
                     view->ndim);
        return NULL;
    }
    for (int k = 0; k < ndim; ++k) {
        if (dims[k] >= 0 && view->shape[k] != dims[k]) {
            PyErr_Format(PyExc_ValueError,
                         "'%s' has shape %zd along axis %d, expected %zd", name,
                         view->shape[k], k, dims[k]);
            return NULL;
        }
        dims[k] = view->shape[k];
    }
    return view->buf;
}

/* ------------------------------------------------------------------ Python API */

static int
parse_fill(PyObject *obj, const char *name, int *fill, float *value)
{
    if (obj == NULL || obj == Py_None) {
        *fill = 0;
        return 0;
    }
    double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "'%s' must be a number or None", name);
        return -1;
    }
    *fill = 1;
    *value = (float) v;
    return 0;
}

static int
read_pixmap(BufferSet *set, PyObject *obj, PixelMap *map, Py_ssize_t ny, Py_ssize_t nx)
{
    Py_ssize_t dims[3] = {ny, nx, 2};
    map->pixmap = acquire(set, obj, "pixmap", 'd', 8, 3, dims, 0);
    if (!map->pixmap) {
        return -1;
    }
    if (dims[0] < 2 || dims[1] < 2 || dims[0] > INT_MAX || dims[1] > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "'pixmap' must be at least 2x2 pixels");
        return -1;
    }
    map->ny = (int) dims[0];
    map->nx = (int) dims[1];
    return 0;
}

static int
check_box_start(const Box *box)
{
    if (box->xmin < 0 || box->ymin < 0) {
        PyErr_SetString(PyExc_ValueError, "xmin and ymin must be >= 0");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_box_doc,
"scan_box(pixmap, out_shape, xmin, xmax, ymin, ymax) -> (xmin, xmax, ymin, ymax) or None\n\n"
"The input box tdriz would use (xmax/ymax of 0 mean the last pixel; shrunk to valid\n"
"pixmap entries) if drizzle's scanner visits all of it, else None (not supported).\n"
"Raises ValueError when the pixmap has too few valid entries, as tdriz does.");

static PyObject *
scan_box(PyObject *self, PyObject *args)
{
    PyObject *opixmap;
    Py_ssize_t out_ny, out_nx;
    Box box;
    BufferSet set = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "O(nn)iiii:scan_box", &opixmap, &out_ny, &out_nx, &box.xmin,
                          &box.xmax, &box.ymin, &box.ymax)) {
        return NULL;
    }
    PixelMap map;
    if (read_pixmap(&set, opixmap, &map, -1, -1) || check_box_start(&box)) {
        goto done;
    }
    if (settle_input_box(&map, &box)) {
        PyErr_SetString(PyExc_ValueError, "No or too few valid pixels in the pixel map.");
        goto done;
    }
    if (box_scanned_whole(&map, &box, (int) out_nx, (int) out_ny)) {
        result = Py_BuildValue("iiii", box.xmin, box.xmax, box.ymin, box.ymax);
    } else {
        result = Py_NewRef(Py_None);
    }
done:
    release_all(&set);
    return result;
}

/* Reads the K extra inputs and outputs; K comes from extra_data. */
static int
read_extra_planes(BufferSet *set, PyObject *oextra_data, PyObject *oextra_out,
                  PyObject *oextra_wht, SquareJob *job, Py_ssize_t ny, Py_ssize_t nx)
{
    job->n_extra = 0;
    if (oextra_data == Py_None || oextra_data == NULL) {
        return 0;
    }
    PyObject *inputs = PySequence_Fast(oextra_data, "'extra_data' must be a sequence");
    if (!inputs) {
        return -1;
    }
    PyObject *outputs = PySequence_Fast(oextra_out, "'extra_out' must be a sequence");
    if (!outputs) {
        Py_DECREF(inputs);
        return -1;
    }
    int status = -1;
    Py_ssize_t k_count = PySequence_Fast_GET_SIZE(inputs);
    if (PySequence_Fast_GET_SIZE(outputs) != k_count) {
        PyErr_SetString(PyExc_ValueError, "'extra_data' and 'extra_out' differ in length");
        goto done;
    }
    if (k_count == 0) {
        status = 0;
        goto done;
    }
    job->extra_data = PyMem_Calloc((size_t) k_count, sizeof(float *));
    job->extra_out = PyMem_Calloc((size_t) k_count, sizeof(float *));
    job->extra_values = PyMem_Calloc((size_t) k_count, sizeof(float));
    if (!job->extra_data || !job->extra_out || !job->extra_values) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < k_count; ++k) {
        Py_ssize_t in_dims[2] = {ny, nx};
        Py_ssize_t out_dims[2] = {job->out_ny, job->out_nx};
        job->extra_data[k] = acquire(set, PySequence_Fast_GET_ITEM(inputs, k), "extra_data[]",
                                     'f', 4, 2, in_dims, 0);
        if (!job->extra_data[k]) {
            goto done;
        }
        job->extra_out[k] = acquire(set, PySequence_Fast_GET_ITEM(outputs, k), "extra_out[]",
                                    'f', 4, 2, out_dims, 1);
        if (!job->extra_out[k]) {
            goto done;
        }
    }
    if (oextra_wht == Py_None) {
        PyErr_SetString(PyExc_ValueError, "'extra_wht' is required with extra planes");
        goto done;
    }
    Py_ssize_t wht_dims[2] = {job->out_ny, job->out_nx};
    job->extra_wht = acquire(set, oextra_wht, "extra_wht", 'f', 4, 2, wht_dims, 1);
    if (!job->extra_wht) {
        goto done;
    }
    if (job->extra_wht == job->out_wht) {
        PyErr_SetString(PyExc_ValueError, "'extra_wht' must not be the same array as 'out_wht'");
        goto done;
    }
    job->n_extra = (int) k_count;
    status = 0;
done:
    Py_DECREF(inputs);
    Py_DECREF(outputs);
    return status;
}

PyDoc_STRVAR(drizzle_doc,
"drizzle(data, weights, pixmap, out_data, out_wht, out_ctx, ctx_bit,\n"
"        extra_data, extra_out, extra_wht, xmin, xmax, ymin, ymax,\n"
"        pixfrac, iscale, wtscale, fill=None, extra_fill=None) -> (nmiss, nskip)\n\n"
"Square-kernel drizzle of `data` (float32 (ny, nx)) with `weights` (float32 or None = 1)\n"
"through `pixmap` (float64 (ny, nx, 2)) into out_data/out_wht (float32 (NY, NX)), OR-ing\n"
"`ctx_bit` into out_ctx (int32 or None) where an overlap's weight is > 0; and of each\n"
"extra_data[k] into extra_out[k] with the shared counts `extra_wht`.  Each plane gets\n"
"exactly what drizzle.cdrizzle.tdriz(kernel='square', in_units='cps') would give.\n"
"`fill`/`extra_fill` (None: leave as is) is written where the group's counts are 0.\n"
"Raises Unsupported (nothing modified) when the input box is not wholly inside the output.");

static PyObject *
drizzle(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "weights", "pixmap", "out_data", "out_wht", "out_ctx",
                               "ctx_bit", "extra_data", "extra_out", "extra_wht", "xmin",
                               "xmax", "ymin", "ymax", "pixfrac", "iscale", "wtscale", "fill",
                               "extra_fill", NULL};
    PyObject *odata, *oweights, *opixmap, *oout, *owht, *octx, *oextra_data, *oextra_out,
        *oextra_wht, *ofill = Py_None, *oextra_fill = Py_None;
    int ctx_bit;
    double pixfrac;
    SquareJob job;
    BufferSet set = {0};
    PyObject *result = NULL;

    memset(&job, 0, sizeof(job));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOiOOOiiiidff|OO:drizzle", keywords,
                                     &odata, &oweights, &opixmap, &oout, &owht, &octx,
                                     &ctx_bit, &oextra_data, &oextra_out, &oextra_wht,
                                     &job.box.xmin, &job.box.xmax, &job.box.ymin,
                                     &job.box.ymax, &pixfrac, &job.iscale, &job.weight_scale,
                                     &ofill, &oextra_fill)) {
        return NULL;
    }
    if (!(pixfrac > 0.001 && isfinite(pixfrac))) {
        /* tdriz switches to the point kernel at 0.001 and below */
        PyErr_SetString(UnsupportedError, "pixfrac <= 0.001 means drizzle's point kernel");
        return NULL;
    }
    if (!(job.iscale > 0.0f && isfinite(job.iscale))) {
        PyErr_SetString(PyExc_ValueError, "'iscale' must be positive and finite");
        return NULL;
    }
    if (!(job.weight_scale > 0.0f)) {
        PyErr_SetString(PyExc_ValueError, "'wtscale' must be > 0");
        return NULL;
    }
    if (parse_fill(ofill, "fill", &job.fill, &job.fill_value) ||
        parse_fill(oextra_fill, "extra_fill", &job.extra_fill, &job.extra_fill_value)) {
        return NULL;
    }
    job.half_side = 0.5 * pixfrac;
    job.ctx_bit = (int32_t) ctx_bit;

    Py_ssize_t in_dims[2] = {-1, -1};
    job.data = acquire(&set, odata, "data", 'f', 4, 2, in_dims, 0);
    if (!job.data || read_pixmap(&set, opixmap, &job.map, in_dims[0], in_dims[1])) {
        goto done;
    }
    if (oweights != Py_None) {
        Py_ssize_t dims[2] = {in_dims[0], in_dims[1]};
        job.weights = acquire(&set, oweights, "weights", 'f', 4, 2, dims, 0);
        if (!job.weights) {
            goto done;
        }
    }
    Py_ssize_t out_dims[2] = {-1, -1};
    job.out_data = acquire(&set, oout, "out_data", 'f', 4, 2, out_dims, 1);
    if (!job.out_data) {
        goto done;
    }
    job.out_wht = acquire(&set, owht, "out_wht", 'f', 4, 2, out_dims, 1);
    if (!job.out_wht) {
        goto done;
    }
    if (out_dims[0] > INT_MAX || out_dims[1] > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "output too large");
        goto done;
    }
    job.out_ny = (int) out_dims[0];
    job.out_nx = (int) out_dims[1];
    if (octx != Py_None) {
        job.out_ctx = acquire(&set, octx, "out_ctx", 'i', 4, 2, out_dims, 1);
        if (!job.out_ctx) {
            goto done;
        }
    }
    if (read_extra_planes(&set, oextra_data, oextra_out, oextra_wht, &job, in_dims[0],
                          in_dims[1]) ||
        check_box_start(&job.box)) {
        goto done;
    }
    if (settle_input_box(&job.map, &job.box)) {
        PyErr_SetString(PyExc_ValueError, "No or too few valid pixels in the pixel map.");
        goto done;
    }
    if (!box_scanned_whole(&job.map, &job.box, job.out_nx, job.out_ny)) {
        PyErr_SetString(UnsupportedError,
                        "the input box does not map wholly inside the output frame");
        goto done;
    }

    long misses;
    Py_BEGIN_ALLOW_THREADS
    misses = run_job(&job);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("li", misses, 0);

done:
    release_all(&set);
    PyMem_Free((void *) job.extra_data);
    PyMem_Free(job.extra_out);
    PyMem_Free(job.extra_values);
    return result;
}

static PyMethodDef square_methods[] = {
    {"drizzle", (PyCFunction) (void (*)(void)) drizzle, METH_VARARGS | METH_KEYWORDS,
     drizzle_doc},
    {"scan_box", scan_box, METH_VARARGS, scan_box_doc},
    {NULL, NULL, 0, NULL},
};

static int
square_exec(PyObject *module)
{
    UnsupportedError = PyErr_NewExceptionWithDoc(
        "webbcal.resample._square.Unsupported",
        "The inputs need drizzle's general scanner; use drizzle instead.", PyExc_ValueError,
        NULL);
    if (!UnsupportedError) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Unsupported", UnsupportedError) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot square_slots[] = {
    {Py_mod_exec, square_exec},
    {0, NULL},
};

static struct PyModuleDef square_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "webbcal.resample._square",
    .m_doc = "Multi-plane square-kernel drizzle, bit-identical to drizzle's tdriz per plane.",
    .m_size = 0,
    .m_methods = square_methods,
    .m_slots = square_slots,
};

PyMODINIT_FUNC
PyInit__square(void)
{
    return PyModuleDef_Init(&square_module);
}
