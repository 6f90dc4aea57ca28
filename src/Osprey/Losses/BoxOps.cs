using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>Which overlap measure <see cref="BoxOps.Iou"/> returns.</summary>
public enum IouKind
{
    /// <summary>Plain intersection over union.</summary>
    IoU,
    /// <summary>Generalised IoU: IoU − (hull area − union) / hull area.</summary>
    GIoU,
    /// <summary>Distance IoU: IoU − centre distance² / hull diagonal².</summary>
    DIoU,
    /// <summary>Complete IoU: DIoU − v·α with the aspect-ratio term v and no-grad α.</summary>
    CIoU,
}

/// <summary>Box format conversions and overlap measures, numerically as Ultralytics' <c>ops</c>/<c>metrics</c>.</summary>
public static class BoxOps
{
    /// <summary>Ultralytics' default epsilon for IoU denominators.</summary>
    public const double DefaultEps = 1e-7;

    // Explicit, process-lifetime Scalars (see Osprey.Runtime.Scalars): the loss runs these every step.
    static readonly Scalar Two = Scalars.Of(2);

    /// <summary>Centre-xywh → corner xyxy along the last dimension (…, 4).</summary>
    public static Tensor XywhToXyxy(Tensor xywh)
    {
        using var scope = NewDisposeScope();
        var parts = xywh.chunk(2, -1);           // 2 × (…, 2)
        var halfSize = parts[1].div(Two);
        return cat(new[] { parts[0].Minus(halfSize), parts[0].Plus(halfSize) }, -1).MoveToOuterDisposeScope();
    }

    /// <summary>Corner xyxy → centre-xywh along the last dimension (…, 4).</summary>
    public static Tensor XyxyToXywh(Tensor xyxy)
    {
        using var scope = NewDisposeScope();
        var parts = xyxy.chunk(2, -1);           // 2 × (…, 2)
        return cat(new[] { parts[0].Plus(parts[1]).div(Two), parts[1].Minus(parts[0]) }, -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pairwise IoU matrix of xyxy boxes, as Ultralytics <c>box_iou</c>:
    /// inter / (area1 + area2 − inter + eps), computed in float32.
    /// </summary>
    /// <param name="boxes1">shape(N, 4) xyxy.</param>
    /// <param name="boxes2">shape(M, 4) xyxy.</param>
    /// <returns>shape(N, M).</returns>
    public static Tensor PairwiseIou(Tensor boxes1, Tensor boxes2, double eps = DefaultEps)
    {
        using var scope = NewDisposeScope();
        var a = boxes1.to_type(ScalarType.Float32).unsqueeze(1).chunk(2, 2); // 2 × (N, 1, 2)
        var b = boxes2.to_type(ScalarType.Float32).unsqueeze(0).chunk(2, 2); // 2 × (1, M, 2)
        var inter = minimum(a[1], b[1]).Minus(maximum(a[0], b[0])).clamp_min(Scalars.Zero).prod(2); // (N, M)
        var area1 = a[1].Minus(a[0]).prod(2);                                                      // (N, 1)
        var area2 = b[1].Minus(b[0]).prod(2);                                                      // (1, M)
        return (inter / area1.Plus(area2).Minus(inter).Plus(Scalars.Of(eps))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Element-wise (broadcasting) overlap of two box sets, exactly as Ultralytics <c>bbox_iou</c>:
    /// union = w1·h1 + w2·h2 − inter + eps; for xyxy input eps is added to the heights; CIoU's α is
    /// computed without gradient.
    /// </summary>
    /// <param name="box1">shape(…, 4).</param>
    /// <param name="box2">shape(…, 4), broadcastable with <paramref name="box1"/>.</param>
    /// <param name="kind">IoU, GIoU, DIoU or CIoU.</param>
    /// <param name="xywh">true: centre-xywh input; false: xyxy input.</param>
    /// <param name="eps">Denominator epsilon (1e-7).</param>
    /// <returns>shape(…, 1).</returns>
    public static Tensor Iou(Tensor box1, Tensor box2, IouKind kind = IouKind.IoU, bool xywh = true, double eps = DefaultEps)
    {
        using var scope = NewDisposeScope();
        Tensor b1x1, b1y1, b1x2, b1y2, b2x1, b2y1, b2x2, b2y2, w1, h1, w2, h2;
        var p1 = box1.chunk(4, -1); // 4 × (…, 1)
        var p2 = box2.chunk(4, -1);
        if (xywh)
        {
            (w1, h1, w2, h2) = (p1[2], p1[3], p2[2], p2[3]);
            b1x1 = p1[0].Minus(w1.div(Two)); b1x2 = p1[0].Plus(w1.div(Two)); b1y1 = p1[1].Minus(h1.div(Two)); b1y2 = p1[1].Plus(h1.div(Two));
            b2x1 = p2[0].Minus(w2.div(Two)); b2x2 = p2[0].Plus(w2.div(Two)); b2y1 = p2[1].Minus(h2.div(Two)); b2y2 = p2[1].Plus(h2.div(Two));
        }
        else
        {
            (b1x1, b1y1, b1x2, b1y2) = (p1[0], p1[1], p1[2], p1[3]);
            (b2x1, b2y1, b2x2, b2y2) = (p2[0], p2[1], p2[2], p2[3]);
            w1 = b1x2.Minus(b1x1); h1 = b1y2.Minus(b1y1).Plus(Scalars.Of(eps));
            w2 = b2x2.Minus(b2x1); h2 = b2y2.Minus(b2y1).Plus(Scalars.Of(eps));
        }

        var inter = minimum(b1x2, b2x2).Minus(maximum(b1x1, b2x1)).clamp_min(Scalars.Zero)
                    * minimum(b1y2, b2y2).Minus(maximum(b1y1, b2y1)).clamp_min(Scalars.Zero); // (…, 1)
        var union = (w1 * h1).Plus(w2 * h2).Minus(inter).Plus(Scalars.Of(eps));
        var iou = inter / union;
        if (kind == IouKind.IoU)
            return iou.MoveToOuterDisposeScope();

        var hullWidth = maximum(b1x2, b2x2).Minus(minimum(b1x1, b2x1));
        var hullHeight = maximum(b1y2, b2y2).Minus(minimum(b1y1, b2y1));
        if (kind == IouKind.GIoU)
        {
            var hullArea = (hullWidth * hullHeight).Plus(Scalars.Of(eps));
            return iou.Minus(hullArea.Minus(union) / hullArea).MoveToOuterDisposeScope();
        }

        var hullDiagonalSq = hullWidth.pow(Two).Plus(hullHeight.pow(Two)).Plus(Scalars.Of(eps));
        var centreDistanceSq = b2x1.Plus(b2x2).Minus(b1x1).Minus(b1x2).pow(Two)
            .Plus(b2y1.Plus(b2y2).Minus(b1y1).Minus(b1y2).pow(Two)).div(Scalars.Of(4));
        if (kind == IouKind.DIoU)
            return iou.Minus(centreDistanceSq / hullDiagonalSq).MoveToOuterDisposeScope();

        var aspect = (w2 / h2).atan().Minus((w1 / h1).atan()).pow(Two).mul(Scalars.Of(4 / (Math.PI * Math.PI))); // v
        Tensor alpha;
        using (no_grad())
            alpha = aspect / aspect.Minus(iou).Plus(Scalars.Of(1 + eps));
        return iou.Minus((centreDistanceSq / hullDiagonalSq).Plus(aspect * alpha.detach())).MoveToOuterDisposeScope();
    }
}
