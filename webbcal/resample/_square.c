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
 * Which input pixels are drizzled is decided by a copy of drizzle's image scanner (the
 * input box clipped to the output frame, see start_image_scan), so inputs partly or
 * wholly outside the output give drizzle's result too.  Only the buffer protocol is used
 * (no numpy headers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
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

/* ------------------------------------------------------------------ scanner */

/* drizzle's image scanner decides which input pixels are drizzled at all: the input box
 * is mapped to the output frame, clipped to it, mapped back, and every input row is
 * limited to the pixels whose whole area lies inside that polygon (with a tolerance).
 * Every step below repeats drizzle 2.2.0's arithmetic so the same pixels are visited. */

#define INVERSION_TOLERANCE 0.03 /* drizzle's MAX_INV_ERR, also used as scan margin */
#define VERTEX_TOLERANCE 1.0e-12 /* drizzle's VERTEX_ATOL */
#define NEAR_ZERO_AREA (1.0e3 * DBL_MIN)
#define MAX_VERTICES 8 /* drizzle's polygons hold 2 x 4 vertices */

typedef struct {
    double x, y;
} Vertex;

typedef struct {
    Vertex v[MAX_VERTICES];
    int n;
} Polygon;

/* A polygon side seen from the scan: x = slope * y + intercept, and the intercept moved
 * by half a pixel (plus the slope's share) towards the inside. */
typedef struct {
    Vertex end; /* the upper vertex, in scan order */
    double slope, inner_intercept;
} ScanEdge;

typedef struct {
    ScanEdge left[MAX_VERTICES], right[MAX_VERTICES];
    int n_left, n_right;
    int current_left, current_right;
    int finished; /* the scan passed the polygon's top */
    double min_y, max_y;
    Box box;
} Scanner;

static inline double
cross(Vertex a, Vertex b)
{
    return a.x * b.y - a.y * b.x;
}

static inline int
wrap_index(int k, int n)
{
    return (k + n) % n; /* k >= -n here */
}

static inline int
same_vertex(Vertex a, Vertex b)
{
    return fabs(a.x - b.x) < VERTEX_TOLERANCE && fabs(a.y - b.y) < VERTEX_TOLERANCE;
}

/* Whether p lies strictly left of the directed line from a to b (drizzle's grouping of
 * the cross products, which decides points on the line). */
static inline int
strictly_left_of(Vertex p, Vertex a, Vertex b)
{
    return (cross(p, a) - cross(b, a) - cross(p, b)) > 0.0;
}

/* Reverses clockwise polygons, judged from the first two vertices about the centroid. */
static void
make_counter_clockwise(Polygon *poly)
{
    if (poly->n < 3) {
        return;
    }
    Vertex centre = {0.0, 0.0};
    for (int k = 0; k < poly->n; ++k) {
        centre.x += poly->v[k].x;
        centre.y += poly->v[k].y;
    }
    centre.x /= poly->n;
    centre.y /= poly->n;
    const Vertex a = {poly->v[0].x - centre.x, poly->v[0].y - centre.y};
    const Vertex b = {poly->v[1].x - centre.x, poly->v[1].y - centre.y};
    if (cross(a, b) >= 0.0) {
        return;
    }
    for (int k = 0; k < poly->n / 2; ++k) {
        const Vertex kept = poly->v[k];
        poly->v[k] = poly->v[poly->n - 1 - k];
        poly->v[poly->n - 1 - k] = kept;
    }
}

/* Appends v unless it repeats the last or the first vertex or the polygon is full. */
static void
append_vertex(Polygon *poly, Vertex v)
{
    if (poly->n > 0 && (same_vertex(poly->v[poly->n - 1], v) || same_vertex(poly->v[0], v))) {
        return;
    }
    if (poly->n < MAX_VERTICES) {
        poly->v[poly->n++] = v;
    }
}

/* Drops vertices lying on the line through their neighbours. */
static void
drop_collinear_vertices(Polygon *poly)
{
    if (poly->n < 3) {
        return;
    }
    Polygon kept = {.n = 0};
    for (int k = 0; k < poly->n; ++k) {
        const Vertex prev = poly->v[wrap_index(k - 1, poly->n)];
        const Vertex here = poly->v[k];
        const Vertex next = poly->v[(k + 1) % poly->n];
        const Vertex chord = {next.x - prev.x, next.y - prev.y};
        const Vertex arm = {here.x - prev.x, here.y - prev.y};
        if (fabs(cross(chord, arm)) > NEAR_ZERO_AREA &&
            sqrt(chord.x * chord.x + chord.y * chord.y) > VERTEX_TOLERANCE) {
            kept.v[kept.n++] = here;
        }
    }
    *poly = kept;
}

/* Sutherland-Hodgman clipping of `subject` by the convex `window` (both made
 * counter-clockwise first), as drizzle's clip_polygon_to_window. */
static Polygon
clip_to_window(Polygon subject, Polygon window)
{
    make_counter_clockwise(&subject);
    make_counter_clockwise(&window);
    Polygon current = subject;
    for (int w = 0; w < window.n; ++w) {
        const Vertex w_from = window.v[wrap_index(w - 1, window.n)];
        const Vertex w_to = window.v[w];
        const Vertex w_dir = {w_to.x - w_from.x, w_to.y - w_from.y};
        Polygon clipped = {.n = 0};
        for (int k = 0; k < current.n; ++k) {
            const Vertex from = current.v[wrap_index(k - 1, current.n)];
            const Vertex to = current.v[k];
            const int from_inside = strictly_left_of(from, w_from, w_to);
            const int to_inside = strictly_left_of(to, w_from, w_to);
            if (from_inside != to_inside) {
                const Vertex dir = {to.x - from.x, to.y - from.y};
                const double denominator = cross(dir, w_dir);
                const double side_term = cross(to, from);
                const double window_term = cross(w_to, w_from);
                const Vertex crossing = {
                    (side_term * w_dir.x - window_term * dir.x) / denominator,
                    (side_term * w_dir.y - window_term * dir.y) / denominator};
                if (isfinite(crossing.x) && isfinite(crossing.y)) {
                    append_vertex(&clipped, crossing);
                }
                if (to_inside) {
                    append_vertex(&clipped, to);
                }
            } else if (from_inside) {
                append_vertex(&clipped, to);
            }
        }
        current = clipped;
    }
    make_counter_clockwise(&current);
    drop_collinear_vertices(&current);
    return current;
}

/* Squared distance between the forward-mapped input point and the target output point;
 * returns 1 when the map gives NaN there. */
static int
mapping_miss(const PixelMap *map, double xin, double yin, Vertex target, double *dist2)
{
    double xout, yout;
    if (map_fractional_point(map, xin, yin, &xout, &yout)) {
        return 1;
    }
    const double dx = xout - target.x, dy = yout - target.y;
    *dist2 = dx * dx + dy * dy;
    return 0;
}

/* Input position of an output point: drizzle's two-dimensional golden-section search
 * within the input box, stopped at 0.03 px or 50 rounds (the latter is a failure, as
 * is a NaN on the way).  Returns 1 on failure, leaving *result alone. */
static int
invert_map(const PixelMap *map, const Box *box, Vertex target, Vertex *result)
{
    const double golden = 0.6180339887498948482;
    const int max_rounds = 50;
    double xlo = (double) box->xmin - 0.5, xhi = (double) box->xmax + 0.5;
    double ylo = (double) box->ymin - 0.5, yhi = (double) box->ymax + 0.5;
    double width = xhi - xlo, height = yhi - ylo;
    int rounds = 0;

    while ((width > INVERSION_TOLERANCE || height > INVERSION_TOLERANCE) &&
           rounds < max_rounds) {
        ++rounds;
        const double x1 = xhi - golden * width, x2 = xlo + golden * width;
        const double y1 = yhi - golden * height, y2 = ylo + golden * height;
        double d11, d12, d21, d22;
        if (mapping_miss(map, x1, y1, target, &d11) || mapping_miss(map, x1, y2, target, &d12) ||
            mapping_miss(map, x2, y1, target, &d21) || mapping_miss(map, x2, y2, target, &d22)) {
            return 1;
        }
        /* keep the sub-box around the strictly closest probe (ties: the last one) */
        if (d11 < d12 && d11 < d21 && d11 < d22) {
            xhi = x2;
            yhi = y2;
        } else if (d12 < d11 && d12 < d21 && d12 < d22) {
            xhi = x2;
            ylo = y1;
        } else if (d21 < d11 && d21 < d12 && d21 < d22) {
            xlo = x1;
            yhi = y2;
        } else {
            xlo = x1;
            ylo = y1;
        }
        width = xhi - xlo;
        height = yhi - ylo;
    }
    if (rounds == max_rounds) {
        return 1;
    }
    result->x = 0.5 * (xlo + xhi);
    result->y = 0.5 * (ylo + yhi);
    return 0;
}

static void
make_scan_edge(ScanEdge *edge, Vertex start, Vertex end, double side /* -1 left, +1 right */)
{
    edge->end = end;
    edge->slope = (end.x - start.x) / (end.y - start.y);
    const double intercept = (start.x * end.y - start.y * end.x) / (end.y - start.y);
    edge->inner_intercept = intercept - copysign(0.5 + 0.5 * fabs(edge->slope), side);
}

/* Splits a counter-clockwise polygon into left and right chains from its lowest to its
 * highest vertex (drizzle's init_scanner).  Returns 1 for fewer than 3 vertices. */
static int
start_scanner(const Polygon *poly, const Box *box, Scanner *scan)
{
    memset(scan, 0, sizeof(*scan));
    scan->box = *box;
    const int n = poly->n;
    if (n < 3) {
        return 1;
    }
    const Vertex *v = poly->v;

    int low_left = 0;
    double min_y = v[0].y;
    for (int k = 1; k < n; ++k) {
        if (v[k].y < min_y) {
            low_left = k;
            min_y = v[k].y;
        }
    }
    int before = wrap_index(low_left - 1, n), after = (low_left + 1) % n;
    int low_right = (v[before].y < v[after].y) ? before : after;
    if (v[low_right].y <= min_y * (1.0 + copysign(VERTEX_TOLERANCE, min_y))) {
        if (v[low_left].x > v[low_right].x) { /* a flat bottom: order its ends */
            const int swap = low_left;
            low_left = low_right;
            low_right = swap;
        }
    } else {
        low_right = low_left;
    }

    int high_right = 0;
    double max_y = v[0].y;
    for (int k = 1; k < n; ++k) {
        if (v[k].y > max_y) {
            high_right = k;
            max_y = v[k].y;
        }
    }
    before = wrap_index(high_right - 1, n);
    after = (high_right + 1) % n;
    int high_left = (v[before].y > v[after].y) ? before : after;
    if (v[high_left].y >= max_y * (1.0 - copysign(VERTEX_TOLERANCE, max_y))) {
        if (v[high_left].x > v[high_right].x) { /* a flat top */
            const int swap = high_left;
            high_left = high_right;
            high_right = swap;
        }
    } else {
        high_left = high_right;
    }

    /* left chain: from the bottom, walking backwards through the vertices */
    if (high_left > low_left) {
        low_left += n;
    }
    scan->n_left = low_left - high_left;
    for (int k = 0; k < scan->n_left; ++k) {
        const int from = wrap_index(low_left - k, n);
        make_scan_edge(scan->left + k, v[from], v[wrap_index(from - 1, n)], -1.0);
    }
    /* right chain: from the bottom, walking forwards */
    if (high_right < low_right) {
        high_right += n;
    }
    scan->n_right = high_right - low_right;
    for (int k = 0; k < scan->n_right; ++k) {
        const int from = (low_right + k) % n;
        make_scan_edge(scan->right + k, v[from], v[(from + 1) % n], 1.0);
    }
    scan->min_y = min_y;
    scan->max_y = max_y;
    return 0;
}

/* Moves the current edge of a chain up while `y_limit` lies above its end (raised by
 * `half` then `margin`, added in that order as drizzle does); returns 1 when the chain
 * runs out, which ends the scan. */
static int
advance_chain(const ScanEdge *chain, int count, int *current, double y_limit, double half,
              double margin)
{
    while (y_limit > chain[*current].end.y + half + margin) {
        if (*current == count - 1) {
            return 1;
        }
        ++*current;
    }
    return 0;
}

enum { ROW_OK = 0, SCAN_ENDED = 1, ROW_OUTSIDE = 2, ROW_EMPTY = 3 };

/* drizzle's get_scanline_limits: the input pixels of row y inside the polygon, for rows
 * asked in increasing order.  Returns one of the codes above; the limits are set for
 * ROW_OK and, like drizzle, for ROW_EMPTY when only the bottom limits were usable. */
static int
scan_row(Scanner *scan, int y, int *first, int *last)
{
    const Box *box = &scan->box;
    if (box->ymax >= box->ymin && (y < 0 || y > box->ymax)) {
        return ROW_OUTSIDE;
    }
    const double row_bottom = (double) y - 0.5, row_top = (double) y + 0.5;
    if (row_top <= scan->min_y || row_bottom >= scan->max_y + 1) {
        return ROW_OUTSIDE;
    }
    /* an empty chain needs a zero-height polygon, where drizzle reads edges it never
     * set (undefined); ending the scan is the safe choice */
    if (scan->finished || scan->n_left == 0 || scan->n_right == 0) {
        return SCAN_ENDED;
    }

    /* limits at the row's bottom: the edges spanning it */
    if (advance_chain(scan->left, scan->n_left, &scan->current_left, row_bottom, 0.0, 0.0) ||
        advance_chain(scan->right, scan->n_right, &scan->current_right, row_bottom, 0.0, 0.0)) {
        scan->finished = 1;
        return SCAN_ENDED;
    }
    const ScanEdge *left = scan->left + scan->current_left;
    const ScanEdge *right = scan->right + scan->current_right;
    double left_bottom = left->slope * y + left->inner_intercept - INVERSION_TOLERANCE;
    double right_bottom = right->slope * y + right->inner_intercept + INVERSION_TOLERANCE;

    /* limits at the row's top: edges reaching above it (half a pixel plus the margin) */
    if (advance_chain(scan->left, scan->n_left, &scan->current_left, row_top, 0.5,
                      INVERSION_TOLERANCE) ||
        advance_chain(scan->right, scan->n_right, &scan->current_right, row_top, 0.5,
                      INVERSION_TOLERANCE)) {
        scan->finished = 1;
        return SCAN_ENDED;
    }
    left = scan->left + scan->current_left;
    right = scan->right + scan->current_right;
    double left_top = left->slope * y + left->inner_intercept - INVERSION_TOLERANCE;
    double right_top = right->slope * y + right->inner_intercept + INVERSION_TOLERANCE;

    if (box->xmax >= box->xmin) {
        const double xmin = box->xmin, xmax = box->xmax;
        if (left_bottom < xmin) left_bottom = xmin;
        if (left_top < xmin) left_top = xmin;
        if (right_bottom > xmax) right_bottom = xmax;
        if (right_top > xmax) right_top = xmax;
    }

    if (left_top >= right_top) {
        *first = (int) round(left_bottom);
        *last = (int) round(right_bottom);
        if (left_bottom >= right_bottom) {
            return ROW_EMPTY;
        }
    } else if (left_bottom >= right_bottom) {
        *first = (int) round(left_top);
        *last = (int) round(right_top);
    } else {
        *first = (int) round(left_bottom > left_top ? left_bottom : left_top);
        *last = (int) round(right_bottom < right_top ? right_bottom : right_top);
    }
    return ROW_OK;
}

/* drizzle's init_image_scanner: the part of the input box that maps inside the output
 * frame, as a polygon in input pixels, and the first/last input row to scan.  When a box
 * corner maps to NaN the whole box is scanned; when a clipped vertex cannot be mapped
 * back, drizzle keeps the vertices inverted so far over the box corners (reproduced).
 * Returns 1 when there is nothing to scan (no overlap). */
static int
start_image_scan(const PixelMap *map, const Box *box, int out_nx, int out_ny, Scanner *scan,
                 int *first_row, int *last_row)
{
    const double left = box->xmin - 0.5, right = box->xmax + 0.5;
    const double bottom = box->ymin - 0.5, top = box->ymax + 0.5;
    Polygon in_input = {{{left, bottom}, {right, bottom}, {right, top}, {left, top}}, 4};
    Polygon in_output = {.n = 4};
    int mapped = 1;

    /* the corners are half-integers, so drizzle's map_point always interpolates */
    for (int k = 0; k < 4 && mapped; ++k) {
        Vertex *out = in_output.v + k;
        mapped = !map_fractional_point(map, in_input.v[k].x, in_input.v[k].y, &out->x, &out->y);
    }
    if (mapped) {
        const double frame_right = (double) out_nx - 0.5, frame_top = (double) out_ny - 0.5;
        const Polygon frame = {
            {{-0.5, -0.5}, {frame_right, -0.5}, {frame_right, frame_top}, {-0.5, frame_top}},
            4};
        const Polygon overlap = clip_to_window(in_output, frame);
        int inverted = 1;
        for (int k = 0; k < overlap.n && inverted; ++k) {
            inverted = !invert_map(map, box, overlap.v[k], in_input.v + k);
        }
        if (inverted) {
            in_input.n = overlap.n;
            make_counter_clockwise(&in_input);
        }
    }

    const int status = start_scanner(&in_input, box, scan);
    if (status) {
        return status;
    }
    *first_row = Py_MAX(0, (int) (scan->min_y + 0.5 + 2.0 * INVERSION_TOLERANCE));
    *last_row = Py_MIN(box->ymax, (int) (scan->max_y + 2.0 * INVERSION_TOLERANCE));
    return 0;
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
    int extra_sqrt;      /* extra inputs are variances: drizzle their square roots */

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
        const float extra = job->extra_data[k][p];
        /* sqrtf is correctly rounded, so this equals numpy's float32 sqrt of the plane */
        job->extra_values[k] = (job->extra_sqrt ? sqrtf(extra) : extra) * job->iscale;
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

/* The rows the scanner allows, counting drizzle's (nmiss, nskip) on the way: skipped rows
 * count as misses of (xmax - xmin) pixels, one short of the box width, as in drizzle. */
static void
drizzle_rows(SquareJob *job, Scanner *scan, int first_row, int last_row, long *misses,
             long *skipped)
{
    const Box *box = &job->box;
    const long row_misses = box->xmax - box->xmin;
    long skip = (long) (box->ymax - box->ymin) - (last_row - first_row);
    long miss = skip * row_misses;

    for (int j = first_row; j <= last_row; ++j) {
        int first = 0, last = -1;
        const int status = scan_row(scan, j, &first, &last);
        if (status == SCAN_ENDED) {
            skip += last_row + 1 - j;
            miss += (long) (last_row + 1 - j) * row_misses;
            break;
        }
        if (status != ROW_OK) {
            miss += row_misses;
            ++skip;
            continue;
        }
        miss += row_misses - (last + 1 - first);
        /* the limits are already inside the box; clamping only guards memory against a
         * degenerate polygon (where drizzle itself would read out of bounds) */
        const int from = Py_MAX(first, box->xmin), to = Py_MIN(last, box->xmax);
        for (int i = from; i <= to; ++i) {
            if (drizzle_pixel(job, i, j) == 0) {
                ++miss;
            }
        }
    }
    *misses = miss;
    *skipped = skip;
}

/* Drizzles the input pixels drizzle's scanner visits, then fills empty outputs.  An input
 * missing the output entirely drizzles nothing and counts (0, 0), as tdriz returns. */
static void
run_job(SquareJob *job, long *misses, long *skipped)
{
    Scanner scan;
    int first_row, last_row;

    *misses = *skipped = 0;
    if (!start_image_scan(&job->map, &job->box, job->out_nx, job->out_ny, &scan, &first_row,
                          &last_row)) {
        drizzle_rows(job, &scan, first_row, last_row, misses, skipped);
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
"        pixfrac, iscale, wtscale, fill=None, extra_fill=None, extra_sqrt=False)\n"
"        -> (nmiss, nskip)\n\n"
"Square-kernel drizzle of `data` (float32 (ny, nx)) with `weights` (float32 or None = 1)\n"
"through `pixmap` (float64 (ny, nx, 2)) into out_data/out_wht (float32 (NY, NX)), OR-ing\n"
"`ctx_bit` into out_ctx (int32 or None) where an overlap's weight is > 0; and of each\n"
"extra_data[k] into extra_out[k] with the shared counts `extra_wht`.  Each plane gets\n"
"exactly what drizzle.cdrizzle.tdriz(kernel='square', in_units='cps') would give.\n"
"`fill`/`extra_fill` (None: leave as is) is written where the group's counts are 0.\n"
"extra_sqrt: the extra planes hold variances and their square roots are drizzled.\n"
"(nmiss, nskip) are tdriz's counts; an input missing the output entirely gives (0, 0).\n"
"Raises Unsupported (nothing modified) for pixfrac <= 0.001 (drizzle's point kernel).");

static PyObject *
drizzle(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", "weights", "pixmap", "out_data", "out_wht", "out_ctx",
                               "ctx_bit", "extra_data", "extra_out", "extra_wht", "xmin",
                               "xmax", "ymin", "ymax", "pixfrac", "iscale", "wtscale", "fill",
                               "extra_fill", "extra_sqrt", NULL};
    PyObject *odata, *oweights, *opixmap, *oout, *owht, *octx, *oextra_data, *oextra_out,
        *oextra_wht, *ofill = Py_None, *oextra_fill = Py_None;
    int ctx_bit;
    double pixfrac;
    SquareJob job;
    BufferSet set = {0};
    PyObject *result = NULL;

    memset(&job, 0, sizeof(job));
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOiOOOiiiidff|OOp:drizzle", keywords,
                                     &odata, &oweights, &opixmap, &oout, &owht, &octx,
                                     &ctx_bit, &oextra_data, &oextra_out, &oextra_wht,
                                     &job.box.xmin, &job.box.xmax, &job.box.ymin,
                                     &job.box.ymax, &pixfrac, &job.iscale, &job.weight_scale,
                                     &ofill, &oextra_fill, &job.extra_sqrt)) {
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

    long misses, skipped;
    Py_BEGIN_ALLOW_THREADS
    run_job(&job, &misses, &skipped);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("ll", misses, skipped);

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
