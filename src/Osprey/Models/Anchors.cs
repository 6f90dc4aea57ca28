using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>Anchor points and the distance ↔ box transforms shared by the Detect head and the loss.</summary>
public static class Anchors
{
    /// <summary>
    /// Anchor centres of every feature map cell, in grid units, and the stride of each.
    /// </summary>
    /// <param name="features">Feature maps, each shape(b, c, h, w).</param>
    /// <param name="strides">Stride of each feature map (8, 16, 32).</param>
    /// <param name="offset">Cell-centre offset (0.5).</param>
    /// <returns>points shape(A, 2) as (x, y) in grid units; strideTensor shape(A, 1); A = Σ h·w.</returns>
    public static (Tensor Points, Tensor StrideTensor) Make(IReadOnlyList<Tensor> features, IReadOnlyList<float> strides,
        float offset = 0.5f)
    {
        using var scope = NewDisposeScope();
        var points = new List<Tensor>();
        var strideTensors = new List<Tensor>();
        var dtype = features[0].dtype;
        var device = features[0].device;
        for (int i = 0; i < features.Count; i++)
        {
            long h = features[i].shape[2], w = features[i].shape[3];
            var sx = arange(w, dtype: dtype, device: device).Plus(Scalars.Of(offset)); // w
            var sy = arange(h, dtype: dtype, device: device).Plus(Scalars.Of(offset)); // h
            var grid = meshgrid(new[] { sy, sx }, indexing: "ij");      // 2 × (h, w)
            points.Add(stack(new[] { grid[1], grid[0] }, -1).view(-1, 2)); // (h·w, 2) as (x, y)
            strideTensors.Add(full(new long[] { h * w, 1 }, strides[i], dtype: dtype, device: device));
        }
        return (cat(points, 0).MoveToOuterDisposeScope(), cat(strideTensors, 0).MoveToOuterDisposeScope());
    }

    /// <summary>(left, top, right, bottom) distances from anchor points → boxes (xywh or xyxy).</summary>
    /// <param name="distance">ltrb distances, shape(..., 4, ...) along <paramref name="dim"/>.</param>
    /// <param name="anchorPoints">Anchor points broadcastable to the distance halves.</param>
    public static Tensor DistToBox(Tensor distance, Tensor anchorPoints, bool xywh = true, long dim = -1)
    {
        using var scope = NewDisposeScope();
        var lt_rb = distance.chunk(2, dim);
        var x1y1 = anchorPoints.Minus(lt_rb[0]);                                    // explicit Scalars: see Scalars
        var x2y2 = anchorPoints.Plus(lt_rb[1]);
        Tensor result = xywh
            ? cat(new[] { x1y1.Plus(x2y2).div(Scalars.Of(2)), x2y2.Minus(x1y1) }, dim)
            : cat(new[] { x1y1, x2y2 }, dim);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>xyxy boxes → ltrb distances from anchor points, clamped to [0, regMax − 0.01].</summary>
    /// <param name="anchorPoints">shape(A, 2).</param>
    /// <param name="boxes">shape(..., A, 4) xyxy in the same units as the anchor points.</param>
    public static Tensor BoxToDist(Tensor anchorPoints, Tensor boxes, float regMax)
    {
        using var scope = NewDisposeScope();
        var xy = boxes.chunk(2, -1);
        var d = cat(new[] { anchorPoints.Minus(xy[0]), xy[1].Minus(anchorPoints) }, -1).clamp_(Scalars.Zero, Scalars.Of(regMax - 0.01));
        return d.MoveToOuterDisposeScope();
    }
}
