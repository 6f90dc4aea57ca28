using Osprey.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Models;

/// <summary>
/// Gives the batch norms of a model imported from a BN-fused export (ONNX) the statistics of real data. The import
/// sets each BN to mean 0, var 1 − eps, weight 1, bias b (exact in eval mode), but in training mode a BN normalises
/// with batch statistics, which turns that into a different function and wrecks fine-tuning. Each BN's eval map is
/// y → a·y + c; with the per-channel mean μ and variance σ² of the convolution's output on data, setting
/// running_mean μ, running_var σ², weight a·√(σ² + eps), bias c + a·μ keeps that map exactly and makes the
/// training-mode output ≈ the same on batches like the data (for the import: weight √(σ² + eps), bias b + μ).
/// </summary>
public static class BatchNormCalibration
{
    /// <summary>Measures every Conv's output statistics over <paramref name="batches"/> (float images in [0, 1],
    /// eval mode, so each layer sees exactly the fused model's inputs) and rewrites its BN as described.</summary>
    /// <returns>How many batch norms were calibrated.</returns>
    public static int Calibrate(DetectionModel model, IEnumerable<Tensor> batches)
    {
        var convs = model.modules().OfType<Conv>().Where(c => !c.IsFused).ToList();
        var sums = new Dictionary<Conv, (Tensor Sum, Tensor Squares, long Count)>();
        bool wasTraining = model.training;
        var hooks = convs.Select(conv => conv.Convolution.register_forward_hook((_, _, output) =>
                {
                    using var y = output.detach().to(ScalarType.Float64);                 // (b, c, h, w)
                    var sum = y.sum(new long[] { 0, 2, 3 }).DetachFromDisposeScope();       // (c)
                    var squares = y.square().sum(new long[] { 0, 2, 3 }).DetachFromDisposeScope();
                    long count = y.numel() / y.shape[1];
                    if (sums.Remove(conv, out var old))
                    {
                        sum.add_(old.Sum); squares.add_(old.Squares); count += old.Count;
                        old.Sum.Dispose(); old.Squares.Dispose();
                    }
                    sums[conv] = (sum, squares, count);
                    return output;
                })).ToList();
        try
        {
            model.eval();
            using (no_grad())
                foreach (var images in batches)
                {
                    using var scope = NewDisposeScope();
                    model.ForwardFeatures(images);
                }
        }
        finally
        {
            foreach (var hook in hooks) hook.remove();
            model.train(wasTraining);
        }
        using var noGrad = no_grad();
        foreach (var (conv, (sum, squares, count)) in sums)
        {
            using var scope = NewDisposeScope();
            var bn = conv.Norm!;
            var mean = sum / count;                                                      // (c)
            var variance = (squares / count - mean.square()).clamp_min(0);               // (c), biased like BN's normaliser
            var dtype = bn.running_mean!.dtype;
            // The BN's eval map is y → a·y + c (a = γ/√(var + eps), c = β − a·mean); keep it with the new statistics.
            var scale = bn.weight!.to(ScalarType.Float64) / (bn.running_var!.to(ScalarType.Float64) + bn.eps).sqrt();
            var shift = bn.bias!.to(ScalarType.Float64) - scale * bn.running_mean!.to(ScalarType.Float64);
            bn.running_mean!.copy_(mean.to(dtype));
            bn.running_var!.copy_(variance.to(dtype));
            bn.weight!.copy_((scale * (variance + bn.eps).sqrt()).to(dtype));
            bn.bias!.copy_((shift + scale * mean).to(dtype));
            sum.Dispose(); squares.Dispose();
        }
        return sums.Count;
    }
}
