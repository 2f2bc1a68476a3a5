"""Numba kernels of detection: cleaning masked pixels, the separable matched filter (fused
with cleaning and thresholding), connected components of horizontal pixel runs, footprint
growing by a disk, and the persistence (multi-threshold) deblender, one footprint at a time.
The background's kernels are in :mod:`minidr.image.background_kernels`.

Pure functions on arrays; arrays indexed ``[y, x]``, pixel centres at integers.

Runs: a binary image is held as its horizontal runs of set pixels, in raster order:
``start`` (int64, ny + 1: the runs of row y are ``start[y]:start[y + 1]``), ``x0`` and
``x1`` (int32, first and last column, inclusive). Costs scale with the number of runs, not
of pixels; only the matched-filtered image and the output label images are full-frame.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from minidr._jit import njit, prange

#: rows of one block of the fused filter (its row-pass buffer is 2 * half-width rows more)
_STRIP = 64


@njit(parallel=True)
def _clean_into(image, mask, excl_bits, out):
    ny, nx = image.shape
    for y in prange(ny):
        for x in range(nx):
            v = image[y, x]
            if (mask[y, x] & excl_bits) or not math.isfinite(v):
                v = 0.0
            out[y, x] = v


def clean_image(image, mask, excl_bits):
    """A float32 copy with non-finite pixels and pixels having any of ``excl_bits`` set to 0."""
    out = np.empty(image.shape, dtype=np.float32)
    _clean_into(image, mask, excl_bits, out)
    return out


@njit
def _row_pass(image, mask, use_mask, excl_bits, k, r0, r1, tmp, buf, acc):
    """Rows r0..r1-1 of ``image`` (cleaned: not finite or ``excl_bits`` in ``mask`` -> 0)
    convolved along x with ``k`` (float64 sums in tap order), rounded into ``tmp[y - r0]``.
    ``buf`` (nx + 2h, zero margins) and ``acc`` (nx) are work rows."""
    nx = image.shape[1]
    h = k.shape[0] // 2
    for yy in range(r0, r1):
        for x in range(nx):
            v = image[yy, x]
            if not math.isfinite(v):
                v = 0.0
            buf[x + h] = v
        if use_mask:
            for x in range(nx):
                if mask[yy, x] & excl_bits:
                    buf[x + h] = 0.0
        acc[:] = 0.0
        for j in range(2 * h + 1):
            kj = k[j]
            for x in range(nx):
                acc[x] += kj * buf[x + j]
        t = tmp[yy - r0]
        for x in range(nx):
            t[x] = acc[x]


@njit
def _col_pass(tmp, r0, y, ny, k, acc):
    """Row y of the column pass into ``acc`` (float64) from the row-pass rows ``tmp``
    (row yy at ``tmp[yy - r0]``); rows outside 0..ny-1 count as 0."""
    h = k.shape[0] // 2
    acc[:] = 0.0
    for j in range(2 * h + 1):
        yy = y + j - h
        if yy < 0 or yy >= ny:
            continue
        kj = k[j]
        t = tmp[yy - r0]
        for x in range(acc.shape[0]):
            acc[x] += kj * t[x]


@njit(parallel=True)
def _smooth_into(image, mask, excl_bits, k, noise, factor, sm, core, nthreads):
    ny, nx = image.shape
    h = k.shape[0] // 2
    use_mask = mask.shape[0] == ny and mask.shape[1] == nx
    want_core = core.shape[0] == ny
    k32 = k.astype(np.float32)
    nstrip = (ny + _STRIP - 1) // _STRIP
    ntask = max(1, min(nstrip, nthreads))
    for task in prange(ntask):
        tmp = np.empty((_STRIP + 2 * h, nx), dtype=np.float32)
        buf = np.zeros(nx + 2 * h, dtype=np.float32)
        acc = np.empty(nx, dtype=np.float32)
        for s in range(task, nstrip, ntask):
            y0 = s * _STRIP
            y1 = min(ny, y0 + _STRIP)
            r0 = max(0, y0 - h)
            r1 = min(ny, y1 + h)
            _row_pass(image, mask, use_mask, excl_bits, k32, r0, r1, tmp, buf, acc)
            for y in range(y0, y1):
                _col_pass(tmp, r0, y, ny, k32, acc)
                o = sm[y]
                for x in range(nx):
                    o[x] = acc[x]
                if want_core:
                    c = core[y]
                    nz = noise[y]
                    for x in range(nx):
                        c[x] = o[x] > factor * nz[x]


def smooth_threshold(image, mask, excl_bits, k, noise, factor, want_core):
    """Matched filter: ``image`` convolved with the separable kernel ``k[:, None] * k[None, :]``
    (odd length; outside the image counts as 0), and the map ``smoothed > factor * noise``.

    Pixels that are not finite or (when ``mask`` has the image's shape; pass a (1, 1) array
    for none) have any of ``excl_bits`` set count as 0. Row pass then column pass in
    float32, in blocks of ``_STRIP`` rows (one task per thread, reusing its row-pass buffer
    of ``_STRIP + 2 h`` rows). ``noise`` (per-pixel, e.g. the background rms [e-]) is read
    only when ``want_core``. Returns (smoothed float32, core bool; (1, 1) when not
    ``want_core``). The outputs are allocated by numpy (huge pages: 4x cheaper to fault in
    than numba's allocation of a full frame).
    """
    ny, nx = image.shape
    sm = np.empty((ny, nx), dtype=np.float32)
    core = np.empty((ny, nx) if want_core else (1, 1), dtype=np.bool_)
    _smooth_into(image, mask, excl_bits, np.asarray(k, dtype=np.float64), noise, float(factor), sm, core,
                 numba.get_num_threads())
    return sm, core


def smooth_runs(image, mask, excl_bits, k, noise, factor, variance=None):
    """The matched filter and threshold of :func:`smooth_threshold` (same values), kept only
    where ``smoothed > factor * noise``: the runs of those pixels (start, x0, x1) and their
    smoothed values (float32; run j's pixels at ``vals[voff[j]:voff[j] + x1[j] - x0[j] + 1]``).

    No full-frame output: each block of rows writes its runs and values into its own slice
    of over-sized scratch arrays (``np.empty``: only the pages written are ever mapped),
    compacted at the end. With ``variance`` [e^2] (same shape), the noise of a pixel is
    ``sqrt(max(variance, noise^2))`` (in float32) instead of ``noise``.
    """
    var = np.zeros((1, 1), np.float32) if variance is None else variance
    return _smooth_runs(image, mask, excl_bits, np.asarray(k, dtype=np.float64), noise, var, float(factor),
                        numba.get_num_threads())


@njit(parallel=True)
def _smooth_runs(image, mask, excl_bits, k, noise, var, factor, nthreads):
    ny, nx = image.shape
    use_var = var.shape[0] == ny and var.shape[1] == nx
    h = k.shape[0] // 2
    use_mask = mask.shape[0] == ny and mask.shape[1] == nx
    nstrip = (ny + _STRIP - 1) // _STRIP
    k32 = k.astype(np.float32)
    rcap = _STRIP * (nx // 2 + 1)
    vcap = _STRIP * nx
    sx0 = np.empty(nstrip * rcap, dtype=np.int32)
    sx1 = np.empty(nstrip * rcap, dtype=np.int32)
    sval = np.empty(nstrip * vcap, dtype=np.float32)
    cnt = np.zeros(ny + 1, dtype=np.int64)
    nval = np.zeros(nstrip, dtype=np.int64)
    ntask = max(1, min(nstrip, nthreads))
    for task in prange(ntask):
        tmp = np.empty((_STRIP + 2 * h, nx), dtype=np.float32)
        buf = np.zeros(nx + 2 * h, dtype=np.float32)
        acc = np.empty(nx, dtype=np.float32)
        nw = (nx + 7) // 8
        above = np.zeros(nw * 8, dtype=np.uint8)
        words = above.view(np.uint64)
        for s in range(task, nstrip, ntask):
            y0 = s * _STRIP
            y1 = min(ny, y0 + _STRIP)
            r0 = max(0, y0 - h)
            r1 = min(ny, y1 + h)
            _row_pass(image, mask, use_mask, excl_bits, k32, r0, r1, tmp, buf, acc)
            nr = s * rcap
            nv = s * vcap
            for y in range(y0, y1):
                _col_pass(tmp, r0, y, ny, k32, acc)
                nz = noise[y]
                if use_var:
                    vr = var[y]
                    for x in range(nx):
                        n2 = max(nz[x] * nz[x], vr[x])
                        above[x] = np.float32(acc[x]) > factor * np.float32(math.sqrt(n2))
                else:
                    for x in range(nx):
                        above[x] = np.float32(acc[x]) > factor * nz[x]
                c = 0
                x = 0
                while x < nx:
                    if x % 8 == 0 and words[x // 8] == 0:
                        x += 8  # eight pixels below threshold
                        continue
                    if above[x]:
                        sx0[nr] = x
                        while x < nx and above[x]:
                            sval[nv] = acc[x]
                            nv += 1
                            x += 1
                        sx1[nr] = x - 1
                        nr += 1
                        c += 1
                    else:
                        x += 1
                cnt[y + 1] = c
            nval[s] = nv - s * vcap
    start = np.cumsum(cnt)
    x0 = np.empty(start[ny], dtype=np.int32)
    x1 = np.empty(start[ny], dtype=np.int32)
    voff = np.empty(start[ny], dtype=np.int64)
    vbase = np.zeros(nstrip + 1, dtype=np.int64)
    for s in range(nstrip):
        vbase[s + 1] = vbase[s] + nval[s]
    vals = np.empty(vbase[nstrip], dtype=np.float32)
    for s in prange(nstrip):
        y0 = s * _STRIP
        a = start[y0]
        b = start[min(ny, y0 + _STRIP)]
        o = vbase[s]
        for i in range(b - a):
            x0[a + i] = sx0[s * rcap + i]
            x1[a + i] = sx1[s * rcap + i]
            voff[a + i] = o
            o += sx1[s * rcap + i] - sx0[s * rcap + i] + 1
        for i in range(nval[s]):
            vals[vbase[s] + i] = sval[s * vcap + i]
    return start, x0, x1, voff, vals


def convolve_separable(image, k):
    """Convolve a float32 image with the separable kernel ``k[:, None] * k[None, :]``
    (odd length); outside the image counts as 0. Returns float32."""
    none = np.zeros((1, 1), dtype=np.uint16)
    sm, _ = smooth_threshold(np.ascontiguousarray(image, dtype=np.float32), none, 0,
                             np.asarray(k, dtype=np.float64), np.zeros((1, 1), np.float32), 0.0, False)
    return sm


@njit(parallel=True)
def _threshold_into(smoothed, rms, factor, out):
    ny, nx = smoothed.shape
    for y in prange(ny):
        for x in range(nx):
            out[y, x] = smoothed[y, x] > factor * rms[y, x]


def threshold_map(smoothed, rms, factor):
    """Boolean map ``smoothed > factor * rms`` (rms a per-pixel map)."""
    out = np.empty(smoothed.shape, dtype=np.bool_)
    _threshold_into(smoothed, rms, float(factor), out)
    return out


# --- runs and labelling -------------------------------------------------------------------------


@njit(parallel=True)
def row_runs(binary):
    """Horizontal runs of True pixels of a boolean image: (start int64 (ny + 1), x0, x1
    int32, inclusive), in raster order."""
    ny, nx = binary.shape
    cnt = np.zeros(ny + 1, dtype=np.int64)
    for y in prange(ny):
        c = 0
        prev = False
        row = binary[y]
        for x in range(nx):
            b = row[x]
            c += b and not prev
            prev = b
        cnt[y + 1] = c
    start = np.cumsum(cnt)
    x0 = np.empty(start[ny], dtype=np.int32)
    x1 = np.empty(start[ny], dtype=np.int32)
    for y in prange(ny):
        if cnt[y + 1] == 0:
            continue
        j = start[y]
        row = binary[y]
        x = 0
        while x < nx:
            if row[x]:
                s = x
                while x < nx and row[x]:
                    x += 1
                x0[j] = s
                x1[j] = x - 1
                j += 1
            else:
                x += 1
    return start, x0, x1


@njit(parallel=True)
def label_row_runs(labels):
    """Runs of equal non-zero labels of a label image: (start, x0, x1, label int32)."""
    ny, nx = labels.shape
    cnt = np.zeros(ny + 1, dtype=np.int64)
    for y in prange(ny):
        c = 0
        prev = 0
        row = labels[y]
        for x in range(nx):
            v = row[x]
            if v != 0 and v != prev:
                c += 1
            prev = v
        cnt[y + 1] = c
    start = np.cumsum(cnt)
    x0 = np.empty(start[ny], dtype=np.int32)
    x1 = np.empty(start[ny], dtype=np.int32)
    lab = np.empty(start[ny], dtype=np.int32)
    for y in prange(ny):
        j = start[y]
        row = labels[y]
        x = 0
        while x < nx:
            v = row[x]
            if v != 0:
                s = x
                while x < nx and row[x] == v:
                    x += 1
                x0[j] = s
                x1[j] = x - 1
                lab[j] = v
                j += 1
            else:
                x += 1
    return start, x0, x1, lab


@njit
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit
def label_runs(start, x0, x1):
    """8-connected components of runs: (label int32 per run, 1..n, n), numbered in raster
    order of their first pixel (as :func:`label8`)."""
    ny = start.shape[0] - 1
    nr = x0.shape[0]
    parent = np.arange(nr).astype(np.int32)
    for y in range(1, ny):
        a = start[y]
        a1 = start[y + 1]
        b = start[y - 1]
        b1 = start[y]
        while a < a1 and b < b1:
            # runs touch (8-connected) when they overlap after widening one by a pixel
            if x1[b] + 1 < x0[a]:
                b += 1
            elif x1[a] + 1 < x0[b]:
                a += 1
            else:
                ra = _find(parent, a)
                rb = _find(parent, b)
                if ra < rb:
                    parent[rb] = ra
                elif rb < ra:
                    parent[ra] = rb
                if x1[a] < x1[b]:
                    a += 1
                else:
                    b += 1
    lab = np.empty(nr, dtype=np.int32)
    n = 0
    for i in range(nr):
        r = _find(parent, i)
        if r == i:
            n += 1
            lab[i] = n
        else:
            lab[i] = lab[r]
    return lab, n


@njit(parallel=True)
def _paint_into(out, start, x0, x1, lab):
    for y in prange(out.shape[0]):
        row = out[y]
        for j in range(start[y], start[y + 1]):
            v = lab[j]
            for x in range(x0[j], x1[j] + 1):
                row[x] = v


def paint_runs(ny, nx, start, x0, x1, lab):
    """int32 label image (0 outside the runs) from labelled runs (allocated by numpy: see
    :func:`smooth_threshold`)."""
    out = np.zeros((ny, nx), dtype=np.int32)
    _paint_into(out, start, x0, x1, lab)
    return out


def label8(binary):
    """8-connected components of a boolean image: (labels int32 with 1..n, n).

    Union-find on horizontal runs; labels are numbered in raster order of their first pixel."""
    binary = np.ascontiguousarray(binary, dtype=np.bool_)
    start, x0, x1 = row_runs(binary)
    lab, n = label_runs(start, x0, x1)
    return paint_runs(binary.shape[0], binary.shape[1], start, x0, x1, lab), n


@njit
def select_runs(start, x0, x1, voff, lab, keep):
    """The runs (and value offsets) whose label l has ``keep[l]``, relabelled 1..m in the
    same order, and m."""
    ny = start.shape[0] - 1
    newlab = np.zeros(keep.shape[0], dtype=np.int32)
    m = 0
    for l in range(1, keep.shape[0]):
        if keep[l]:
            m += 1
            newlab[l] = m
    nst = np.zeros(ny + 1, dtype=np.int64)
    cnt = 0
    for y in range(ny):
        for j in range(start[y], start[y + 1]):
            if newlab[lab[j]]:
                cnt += 1
        nst[y + 1] = cnt
    nx0 = np.empty(cnt, dtype=np.int32)
    nx1 = np.empty(cnt, dtype=np.int32)
    nvo = np.empty(cnt, dtype=np.int64)
    nlab = np.empty(cnt, dtype=np.int32)
    i = 0
    for j in range(start[ny]):
        v = newlab[lab[j]]
        if v:
            nx0[i] = x0[j]
            nx1[i] = x1[j]
            nvo[i] = voff[j]
            nlab[i] = v
            i += 1
    return nst, nx0, nx1, nvo, nlab, m


@njit
def run_values(image, start, x0, x1):
    """Values of ``image`` on runs, as :func:`smooth_runs` returns them: (voff, vals)."""
    ny = start.shape[0] - 1
    nr = x0.shape[0]
    voff = np.empty(nr, dtype=np.int64)
    o = 0
    for j in range(nr):
        voff[j] = o
        o += x1[j] - x0[j] + 1
    vals = np.empty(o, dtype=image.dtype)
    for y in range(ny):
        for j in range(start[y], start[y + 1]):
            for x in range(x0[j], x1[j] + 1):
                vals[voff[j] + x - x0[j]] = image[y, x]
    return voff, vals


@njit
def run_stats(start, x0, x1, voff, vals, lab, n):
    """Per label 1..n of labelled runs with values: pixel count and sum of values (float64,
    summed in raster order, as :func:`label_stats`)."""
    ny = start.shape[0] - 1
    npix = np.zeros(n + 1, dtype=np.int64)
    tot = np.zeros(n + 1, dtype=np.float64)
    for y in range(ny):
        for j in range(start[y], start[y + 1]):
            l = lab[j]
            m = x1[j] - x0[j] + 1
            npix[l] += m
            o = voff[j]
            for i in range(m):
                tot[l] += vals[o + i]
    return npix, tot


@njit
def _disk_half_widths(r):
    """floor(sqrt(r^2 - dy^2)) for dy = -r..r (exact in integers)."""
    half = np.empty(2 * r + 1, dtype=np.int64)
    for dy in range(-r, r + 1):
        w = int(math.sqrt(r * r - dy * dy))
        while (w + 1) * (w + 1) + dy * dy <= r * r:
            w += 1
        while w * w + dy * dy > r * r:
            w -= 1
        half[dy + r] = w
    return half


@njit
def _row_bitmap_runs(row, words, nx, ox0, ox1, n):
    """Append the runs of the 0/1 row bitmap ``row`` (``words`` its uint64 view) to
    ``ox0/ox1`` from index n, clearing the row; returns the new count."""
    x = 0
    while x < nx:
        if x % 8 == 0 and words[x // 8] == 0:
            x += 8
            continue
        if row[x]:
            ox0[n] = x
            while x < nx and row[x]:
                row[x] = 0
                x += 1
            ox1[n] = x - 1
            n += 1
        else:
            x += 1
    return n


def grow_runs(ny, nx, start, x0, x1, r):
    """Runs (start, x0, x1) of the runs dilated by a disk of radius r [pixels] (pixel
    centres within r): a run of row y covers, in row y + dy, its columns widened by
    floor(sqrt(r^2 - dy^2)) on each side. Each output row is painted into a one-row
    bitmap and read back as runs: no full-frame array."""
    return _grow_runs(int(ny), int(nx), start, x0, x1, int(r), numba.get_num_threads())


@njit(parallel=True)
def _grow_runs(ny, nx, start, x0, x1, r, nthreads):
    half = _disk_half_widths(r)
    nstrip = (ny + _STRIP - 1) // _STRIP
    rcap = _STRIP * (nx // 2 + 1)
    sx0 = np.empty(nstrip * rcap, dtype=np.int32)
    sx1 = np.empty(nstrip * rcap, dtype=np.int32)
    cnt = np.zeros(ny + 1, dtype=np.int64)
    ntask = max(1, min(nstrip, nthreads))
    for task in prange(ntask):
        nw = (nx + 7) // 8
        row = np.zeros(nw * 8, dtype=np.uint8)
        words = row.view(np.uint64)
        for s in range(task, nstrip, ntask):
            n = s * rcap
            for y in range(s * _STRIP, min(ny, (s + 1) * _STRIP)):
                for dy in range(-r, r + 1):
                    yy = y + dy
                    if yy < 0 or yy >= ny:
                        continue
                    w = half[dy + r]
                    for j in range(start[yy], start[yy + 1]):
                        for x in range(max(0, x0[j] - w), min(nx - 1, x1[j] + w) + 1):
                            row[x] = 1
                n1 = _row_bitmap_runs(row, words, nx, sx0, sx1, n)
                cnt[y + 1] = n1 - n
                n = n1
    gstart = np.cumsum(cnt)
    gx0 = np.empty(gstart[ny], dtype=np.int32)
    gx1 = np.empty(gstart[ny], dtype=np.int32)
    for s in prange(nstrip):
        a = gstart[s * _STRIP]
        b = gstart[min(ny, (s + 1) * _STRIP)]
        for i in range(b - a):
            gx0[a + i] = sx0[s * rcap + i]
            gx1[a + i] = sx1[s * rcap + i]
    return gstart, gx0, gx1


@njit
def label_stats(labels, n, values):
    """Per label 1..n: pixel count, sum of values, and (y, x) and value of the maximum."""
    ny, nx = labels.shape
    npix = np.zeros(n + 1, dtype=np.int64)
    tot = np.zeros(n + 1, dtype=np.float64)
    pmax = np.full(n + 1, -np.inf)
    py = np.zeros(n + 1, dtype=np.int64)
    px = np.zeros(n + 1, dtype=np.int64)
    for y in range(ny):
        for x in range(nx):
            l = labels[y, x]
            if l == 0:
                continue
            v = values[y, x]
            npix[l] += 1
            tot[l] += v
            if v > pmax[l]:
                pmax[l] = v
                py[l] = y
                px[l] = x
    return npix, tot, pmax, py, px


# --- deblending ---------------------------------------------------------------------------------


@njit
def _stable_order(v):
    """``np.argsort(v, kind="stable")`` of a float32 array without NaNs: one sort of int64
    keys (the value's bits mapped to an order-preserving unsigned 32-bit integer, then the
    index; needs v.size < 2**31)."""
    m = v.shape[0]
    bits = v.view(np.int32)
    key = np.empty(m, dtype=np.int64)
    for i in range(m):
        b = np.int64(bits[i])
        if b >= 0:
            u = b + 2147483648
        elif b == -2147483648:  # -0.0 ties with 0.0
            u = 2147483648
        else:
            u = 2147483647 - (b & 2147483647)
        key[i] = (u << 31) | i
    key.sort()
    out = np.empty(m, dtype=np.int64)
    for i in range(m):
        out[i] = key[i] & 2147483647
    return out


@njit
def _one_branch(neg, pos, bh, bw):
    """True when exactly one pixel of a footprint has no 8-neighbour before it in the
    deblending order (``neg`` ascending, ties in raster order; ``pos`` the pixels' flat
    indices in the bh x bw bounding box, in raster order): the tree then never merges."""
    m = neg.shape[0]
    grid = np.full((bh, bw), np.inf, dtype=np.float32)
    for p in range(m):
        grid[pos[p] // bw, pos[p] % bw] = neg[p]
    count = 0
    for p in range(m):
        ly = pos[p] // bw
        lx = pos[p] - ly * bw
        v = neg[p]
        first = True
        for dy in (-1, 0, 1):
            yy = ly + dy
            if yy < 0 or yy >= bh:
                continue
            for dx in (-1, 0, 1):
                xx = lx + dx
                if (dy == 0 and dx == 0) or xx < 0 or xx >= bw:
                    continue
                u = grid[yy, xx]
                if u < v or (u == v and (dy < 0 or (dy == 0 and dx < 0))):
                    first = False
                    break
            if not first:
                break
        if first:
            count += 1
            if count > 1:
                return False
    return count == 1


@njit(parallel=True)
def persistence_runs(vals, voff, start, x0, x1, lab, n, ny, nx, variance, rms, knorm, nsig, contrast):
    """Significant peaks of each footprint (labelled runs, labels 1..n, each an 8-connected
    component, with the smoothed values ``vals``/``voff`` of :func:`smooth_runs`; image
    shape (ny, nx)) by a continuous multi-threshold tree, one footprint per task.

    A footprint's pixels are visited in decreasing ``smoothed`` value (ties in raster
    order). Connected branches grow by union-find; when two or more branches meet at level
    s, each branch whose peak is not the highest becomes a separate child if its prominence
    (peak - s) is at least ``nsig`` times the smoothed noise at the peak,
    ``knorm * sqrt(max(variance, rms^2))``, and its flux (sum of smoothed values in the
    branch) at least ``contrast`` times the footprint's total (or its prominence twice
    that); either way it then merges into the highest branch. The highest peak of each
    footprint is always kept. Returns (flat index int64, label int32, smoothed value
    float32) of the kept peaks, by footprint then decreasing height.
    """
    nr = x0.shape[0]
    # runs grouped by label, raster order kept within a label
    rcount = np.zeros(n + 2, dtype=np.int64)
    for j in range(nr):
        rcount[lab[j] + 1] += 1
    rstart = np.cumsum(rcount)
    rorder = np.empty(nr, dtype=np.int64)
    rrow = np.empty(nr, dtype=np.int32)
    fill = rstart.copy()
    for y in range(ny):
        for j in range(start[y], start[y + 1]):
            l = lab[j]
            rorder[fill[l]] = j
            rrow[fill[l]] = y
            fill[l] += 1
    npix = np.zeros(n + 1, dtype=np.int64)
    for i in range(nr):
        j = rorder[i]
        npix[lab[j]] += x1[j] - x0[j] + 1
    pstart = np.cumsum(npix)  # pixels of label l: pstart[l - 1]:pstart[l]
    kept = np.zeros(pstart[n], dtype=np.int64)
    kval = np.zeros(pstart[n], dtype=np.float32)
    nkept = np.zeros(n + 1, dtype=np.int64)
    for l in prange(1, n + 1):
        ra = rstart[l]
        rb = rstart[l + 1]
        m = npix[l]
        if m == 0:
            continue
        ylo = rrow[ra]
        yhi = rrow[rb - 1]
        xlo = nx
        xhi = -1
        for i in range(ra, rb):
            j = rorder[i]
            xlo = min(xlo, x0[j])
            xhi = max(xhi, x1[j])
        bw = xhi - xlo + 1
        pos = np.empty(m, dtype=np.int64)   # flat index in the bounding box
        neg = np.empty(m, dtype=np.float32)
        total = 0.0
        p = 0
        for i in range(ra, rb):
            j = rorder[i]
            y = rrow[i]
            for x in range(x0[j], x1[j] + 1):
                v = vals[voff[j] + x - x0[j]]
                neg[p] = -v
                pos[p] = (y - ylo) * bw + (x - xlo)
                total += v
                p += 1
        base = pstart[l - 1]
        if _one_branch(neg, pos, yhi - ylo + 1, bw):
            # a single local maximum: no branches ever meet, the tree keeps only the top
            top = 0
            for p in range(1, m):
                if neg[p] < neg[top]:
                    top = p
            pr = pos[top]
            kept[base] = (pr // bw + ylo) * nx + (pr - (pr // bw) * bw + xlo)
            kval[base] = -neg[top]
            nkept[l] = 1
            continue
        order = _stable_order(neg)
        rank = np.full(((yhi - ylo + 1), bw), -1, dtype=np.int32)
        parent = np.empty(m, dtype=np.int32)
        flux = np.empty(m, dtype=np.float64)
        keep = np.zeros(m, dtype=np.bool_)
        roots = np.empty(8, dtype=np.int32)
        bh = yhi - ylo + 1
        for k in range(m):
            q0 = pos[order[k]]
            ly = q0 // bw
            lx = q0 - ly * bw
            rank[ly, lx] = k
            parent[k] = k
            level = -neg[order[k]]
            flux[k] = level
            nr8 = 0
            for dy in (-1, 0, 1):
                yy = ly + dy
                if yy < 0 or yy >= bh:
                    continue
                for dx in (-1, 0, 1):
                    if dy == 0 and dx == 0:
                        continue
                    xx = lx + dx
                    if xx < 0 or xx >= bw:
                        continue
                    q = rank[yy, xx]
                    if q < 0:
                        continue
                    r = _find(parent, q)
                    dup = False
                    for t in range(nr8):
                        if roots[t] == r:
                            dup = True
                            break
                    if not dup:
                        roots[nr8] = r
                        nr8 += 1
            if nr8 == 0:
                continue
            win = roots[0]
            for t in range(1, nr8):
                if roots[t] < win:
                    win = roots[t]
            for t in range(nr8):
                r = roots[t]
                if r == win:
                    continue
                pr = pos[order[r]]
                py = pr // bw + ylo
                px = pr - (pr // bw) * bw + xlo
                prom = -neg[order[r]] - level
                sig = knorm * math.sqrt(max(variance[py, px], rms[py, px] * rms[py, px]))
                if prom >= nsig * sig and (flux[r] >= contrast * total or prom >= 2.0 * nsig * sig):
                    keep[r] = True
                parent[r] = win
                flux[win] += flux[r]
            parent[k] = win
            flux[win] += flux[k]
        c = 0
        for k in range(m):
            if parent[k] == k or keep[k]:
                pr = pos[order[k]]
                kept[base + c] = (pr // bw + ylo) * nx + (pr - (pr // bw) * bw + xlo)
                kval[base + c] = -neg[order[k]]
                c += 1
        nkept[l] = c
    tot = 0
    for l in range(1, n + 1):
        tot += nkept[l]
    out = np.empty(tot, dtype=np.int64)
    olab = np.empty(tot, dtype=np.int32)
    oval = np.empty(tot, dtype=np.float32)
    i = 0
    for l in range(1, n + 1):
        base = pstart[l - 1]
        for c in range(nkept[l]):
            out[i] = kept[base + c]
            olab[i] = l
            oval[i] = kval[base + c]
            i += 1
    return out, olab, oval
