using Osprey.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Osprey.Models.Blocks;

/// <summary>
/// Ultralytics <c>Conv</c>: Conv2d (no bias, "same" padding) → BatchNorm2d (eps 1e-3, momentum 0.03) → SiLU.
/// After <see cref="Fuse"/> the batch norm is folded into the convolution (which gains a bias) and removed.
/// </summary>
public sealed class Conv : Module<Tensor, Tensor>, ICastPolicyAware, IOnnxBlock
{
    /// <summary>Batch-norm epsilon used by Ultralytics (initialize_weights sets 1e-3).</summary>
    public const double BatchNormEps = 1e-3;

    /// <summary>Batch-norm momentum used by Ultralytics (0.03).</summary>
    public const double BatchNormMomentum = 0.03;

    private readonly Conv2d conv;
    private BatchNorm2d? bn;
    private readonly Module<Tensor, Tensor> act;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernel">Square kernel size.</param>
    /// <param name="stride">Stride.</param>
    /// <param name="padding">Padding; null → autopad (effective kernel / 2).</param>
    /// <param name="groups">Convolution groups.</param>
    /// <param name="dilation">Dilation.</param>
    /// <param name="activation">SiLU when true, identity otherwise.</param>
    public Conv(long inChannels, long outChannels, long kernel = 1, long stride = 1, long? padding = null,
        long groups = 1, long dilation = 1, bool activation = true) : base(nameof(Conv))
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        conv = Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding ?? AutoPad(kernel, dilation),
            dilation: dilation, groups: groups, bias: false);
        bn = BatchNorm2d(outChannels, eps: BatchNormEps, momentum: BatchNormMomentum);
        act = activation ? SiLU() : Identity();
        RegisterComponents();
    }

    /// <summary>Input channels.</summary>
    public long InChannels { get; }

    /// <summary>Output channels.</summary>
    public long OutChannels { get; }

    /// <summary>True once the batch norm has been folded into the convolution.</summary>
    public bool IsFused => bn is null;

    /// <summary>The convolution (for statistics and calibration).</summary>
    internal Conv2d Convolution => conv;

    /// <summary>The activation (SiLU or identity).</summary>
    public Module<Tensor, Tensor> Activation => act;

    /// <summary>The batch norm, or null once fused.</summary>
    internal BatchNorm2d? Norm => bn;

    /// <summary>How the convolution computes (<see cref="DetectionModel.UseCastPolicy"/> sets it).</summary>
    public CastPolicy Policy { get; set; } = CastPolicy.Float32;

    /// <summary>Ultralytics autopad: padding that keeps h, w (divided by stride) for odd kernels.</summary>
    public static long AutoPad(long kernel, long dilation = 1)
    {
        long effective = dilation > 1 ? dilation * (kernel - 1) + 1 : kernel;
        return effective / 2;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        // x (b, c_in, h, w) → (b, c_out, h/s, w/s)
        var y = Policy.Conv(conv, x);
        if (bn is not null) y = bn.call(y); // low-precision y with fp32 γ, β and running statistics
        return act.call(y);
    }

    /// <summary>Conv (fused weight and bias), then Sigmoid·Mul for SiLU: <c>/model.0/conv/Conv</c>, <c>/model.0/act/Mul</c>.</summary>
    public string Emit(OnnxGraph graph, string prefix, IReadOnlyList<string> inputs)
    {
        if (!IsFused) throw new InvalidOperationException($"ONNX export: {prefix} is not fused (export fuses the model first).");
        string scope = OnnxGraph.Scope(prefix);
        string y = graph.Conv(scope + "/conv/Conv", inputs[0], prefix + ".conv", conv);
        if (act is not TorchSharp.Modules.SiLU) return y;
        string sigmoid = graph.Node("Sigmoid", scope + "/act/Sigmoid", [y]);
        return graph.Node("Mul", scope + "/act/Mul", [y, sigmoid]);
    }

    /// <summary>
    /// Folds the batch norm into the convolution: w' = w·γ/√(var+eps), b' = β − mean·γ/√(var+eps); removes <c>bn</c>.
    /// </summary>
    public void Fuse()
    {
        if (bn is null) return;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var scale = bn.weight! / (bn.running_var! + BatchNormEps).sqrt();       // (c_out)
            var fusedWeight = conv.weight! * scale.view(-1, 1, 1, 1);              // (c_out, c_in/g, k, k)
            var fusedBias = bn.bias! - bn.running_mean! * scale;                    // (c_out)
            conv.weight!.copy_(fusedWeight);
            conv.bias = new Parameter(fusedBias.detach().clone().DetachFromDisposeScope(), requires_grad: false);
        }
        _internal_submodules.Remove("bn");
        bn.Dispose();
        bn = null;
    }
}
