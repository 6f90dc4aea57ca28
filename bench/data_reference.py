#!/usr/bin/python3
"""Reference for Osprey's data benchmark: the Ultralytics training pipeline in one Python process with OpenCV.

Per sample: load_image (imread, long side -> imgsz), mosaic of 4 on a 2s x 2s canvas, RandomPerspective (warpAffine,
border -s/2, boxes + box_candidates), RandomHSV (split/LUT/merge), flips, Format (BGR->RGB, HWC->CHW, contiguous).
--buffer N (default 128 = Ultralytics' max_buffer_length min(n, 8 * batch, 1000) at batch 16): Ultralytics' dataset buffer,
as BaseDataset.load_image and Mosaic.get_indexes(buffer=True) do it: every decoded image is kept and its index appended to
the buffer; past max_buffer_length - 1 entries the oldest leaves (and its image too unless cache=ram); mosaic partners are
random.choices(buffer, k=3) after the sample's own image is loaded. --buffer 0: partners uniform over the dataset, no buffer.
Prints one JSON line. Run with /usr/bin/python3 (Debian python3-opencv, python3-numpy).
usage: data_reference.py IMAGES_DIR [--imgsz 640] [--samples 256] [--cache none|ram] [--threads 1] [--seed 0] [--buffer 128]
"""
import argparse, glob, json, math, os, random, time

import cv2
import numpy as np


def label_path(img):
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(img.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def read_labels(img):
    p = label_path(img)
    if not os.path.exists(p):
        return np.zeros((0, 5), np.float32)
    rows = [r.split() for r in open(p).read().strip().splitlines() if r.strip()]
    lb = np.array([r for r in rows if len(r) == 5], dtype=np.float32)
    return lb.reshape(-1, 5)


def load_image(path, s):
    im = cv2.imread(path)
    h0, w0 = im.shape[:2]
    r = s / max(h0, w0)
    if r != 1:
        w, h = min(math.ceil(w0 * r), s), min(math.ceil(h0 * r), s)
        im = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
    return im


def box_candidates(box1, box2, wh_thr=2, ar_thr=100, area_thr=0.1, eps=1e-16):
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def sample(index, files, labels, get_image, s, partners):
    first = get_image(index)  # Ultralytics loads the sample's own image before choosing partners from the buffer
    idx = [index] + partners()
    yc, xc = (int(random.uniform(s // 2, 2 * s - s // 2)) for _ in range(2))
    img4 = None
    boxes, classes = [], []
    for i, j in enumerate(idx):
        img = first if i == 0 else get_image(j)
        h, w = img.shape[:2]
        if i == 0:
            img4 = np.full((s * 2, s * 2, img.shape[2]), 114, dtype=np.uint8)
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif i == 1:
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif i == 2:
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        img4[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
        padw, padh = x1a - x1b, y1a - y1b
        lb = labels[j]
        b = np.stack([(lb[:, 1] - lb[:, 3] / 2) * w + padw, (lb[:, 2] - lb[:, 4] / 2) * h + padh,
                      (lb[:, 1] + lb[:, 3] / 2) * w + padw, (lb[:, 2] + lb[:, 4] / 2) * h + padh], 1)
        boxes.append(b)
        classes.append(lb[:, 0])
    boxes = np.clip(np.concatenate(boxes, 0), 0, 2 * s)
    classes = np.concatenate(classes, 0)
    good = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, classes = boxes[good], classes[good]

    # RandomPerspective (degrees=0, translate=0.1, scale=0.5, shear=0, perspective=0), border -s/2
    C = np.eye(3, dtype=np.float32); C[0, 2] = -img4.shape[1] / 2; C[1, 2] = -img4.shape[0] / 2
    P = np.eye(3, dtype=np.float32)
    R = np.eye(3, dtype=np.float32); a = random.uniform(0, 0); sc = random.uniform(0.5, 1.5)
    R[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=sc)
    S = np.eye(3, dtype=np.float32)
    T = np.eye(3, dtype=np.float32); T[0, 2] = random.uniform(0.4, 0.6) * s; T[1, 2] = random.uniform(0.4, 0.6) * s
    M = T @ S @ R @ P @ C
    img = cv2.warpAffine(img4, M[:2], dsize=(s, s), borderValue=(114, 114, 114))
    n = len(boxes)
    if n:
        xy = np.ones((n * 4, 3), dtype=boxes.dtype)
        xy[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
        xy = (xy @ M.T)[:, :2].reshape(n, 8)
        x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
        new = np.concatenate((x.min(1), y.min(1), x.max(1), y.max(1))).reshape(4, n).T
        new = np.clip(new, 0, s)
        keep = box_candidates((boxes * sc).T, new.T)
        boxes, classes = new[keep], classes[keep]

    # RandomHSV
    r = np.random.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=r.dtype)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    im_hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    cv2.cvtColor(im_hsv, cv2.COLOR_HSV2BGR, dst=img)

    # flips (fliplr=0.5, flipud=0)
    if random.random() < 0.5:
        img = np.fliplr(img)
        boxes = boxes.copy(); boxes[:, [0, 2]] = s - boxes[:, [2, 0]]
    # Format: BGR->RGB, HWC->CHW, contiguous
    chw = np.ascontiguousarray(img.transpose(2, 0, 1)[::-1])
    return chw, classes, boxes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--cache", default="none", choices=["none", "ram"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--buffer", type=int, default=128)
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    random.seed(a.seed); np.random.seed(a.seed)
    exts = {"bmp", "jpeg", "jpg", "png", "tif", "tiff", "webp"}
    files = sorted(f for f in glob.glob(os.path.join(a.images, "**", "*.*"), recursive=True) if f.rsplit(".", 1)[-1].lower() in exts)
    labels = [read_labels(f) for f in files]
    n = len(files)
    max_len = min(n, a.buffer)
    ims, buffer, decodes = [None] * n, [], [0]

    def get_image(i):
        if ims[i] is not None:
            return ims[i]
        im = load_image(files[i], a.imgsz)
        decodes[0] += 1
        if max_len > 0:
            ims[i] = im
            buffer.append(i)
            if 1 < len(buffer) >= max_len:
                j = buffer.pop(0)
                if a.cache != "ram":
                    ims[j] = None
        elif a.cache == "ram":
            ims[i] = im
        return im

    if max_len > 0:
        partners = lambda: random.choices(buffer, k=3)
    else:
        partners = lambda: [random.randint(0, n - 1) for _ in range(3)]
    if a.cache == "ram":
        for i in range(n):
            get_image(i)
    order = list(range(n))
    for i in range(8):  # warm-up
        sample(order[i % n], files, labels, get_image, a.imgsz, partners)
    d0 = decodes[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(a.samples):
        if i % n == 0:
            random.shuffle(order)
        sample(order[i % n], files, labels, get_image, a.imgsz, partners)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"mode": a.cache, "samples": a.samples, "seconds": round(dt, 4), "cpu_seconds": round(cpu, 4),
                      "decodes": decodes[0] - d0, "buffer": max_len,
                      "samples_per_s": round(a.samples / dt, 2),
                      "cv_threads": a.threads, "imgsz": a.imgsz, "opencv": cv2.__version__}))


if __name__ == "__main__":
    main()
