using Osprey.Config;
using Osprey.Models;
using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>How a run computes: the model's cast policy and whether fp16 loss scaling is on.</summary>
/// <param name="Policy">The cast policy for the model (and the EMA model that validation uses).</param>
/// <param name="Note">Why, in a few words (for the start-of-run line).</param>
public sealed record PrecisionChoice(CastPolicy Policy, string Note)
{
    /// <summary>fp16 needs dynamic loss scaling; bf16 and fp32 do not.</summary>
    public bool UsesLossScaler => Policy.ComputeType == ScalarType.Float16;

    /// <summary>"bf16, channels_last (…)" and the like.</summary>
    public override string ToString() => $"{Policy.Name} ({Note})";
}

/// <summary>
/// <c>amp</c> and <c>amp_dtype</c> as a run uses them. As in Ultralytics, <c>amp=True</c> is the default and means
/// mixed precision on CUDA only: on the CPU it is turned off without a message (Ultralytics' <c>check_amp</c>
/// returns False for cpu/mps). Ultralytics always autocasts to fp16; Osprey picks bf16 where the GPU has it (compute
/// capability 8.0 or newer: no loss scaling needed, fp32's range) and fp16 with dynamic loss scaling elsewhere or
/// when the capability cannot be read. <c>amp_dtype=bf16|fp16</c> forces the dtype, and, given explicitly on the CPU,
/// turns the cast policy on there too (CPU bf16). On CUDA the model and its input are channels-last whatever the
/// precision.
/// </summary>
public static class MixedPrecision
{
    /// <summary>The dtype <c>amp_dtype</c> names, or null for <c>auto</c>.</summary>
    public static ScalarType? DtypeOf(AmpDtype dtype) => dtype switch
    {
        AmpDtype.BF16 => ScalarType.BFloat16,
        AmpDtype.FP16 => ScalarType.Float16,
        _ => null,
    };

    /// <summary>The run's precision for <paramref name="args"/> on <paramref name="device"/>.</summary>
    public static PrecisionChoice Resolve(OspreyArgs args, Device device)
    {
        bool cuda = device.type == DeviceType.CUDA;
        var capability = cuda ? CudaCapability.Of(device.index < 0 ? 0 : device.index) : null;
        return Resolve(args.Amp, args.AmpDtype, args.IsGiven("amp_dtype"), cuda, capability?.Major);
    }

    /// <summary>The rule itself (pure): see the class summary.</summary>
    /// <param name="amp">amp.</param>
    /// <param name="ampDtype">amp_dtype.</param>
    /// <param name="ampDtypeGiven">amp_dtype was given explicitly.</param>
    /// <param name="cuda">The device is a GPU.</param>
    /// <param name="capabilityMajor">Its compute capability major, or null when unknown.</param>
    public static PrecisionChoice Resolve(bool amp, AmpDtype ampDtype, bool ampDtypeGiven, bool cuda, int? capabilityMajor)
    {
        ScalarType? requested = DtypeOf(ampDtype);
        string name = ArgsSchema.Format(ampDtype);
        if (!amp) return new(new CastPolicy(ScalarType.Float32, cuda), "amp=False");
        if (!cuda)
            return requested is { } forced && ampDtypeGiven
                ? new(new CastPolicy(forced), $"amp_dtype={name} on the CPU")
                : new(CastPolicy.Float32, "AMP is for CUDA only");
        if (requested is { } dtype) return new(new CastPolicy(dtype, true), $"amp_dtype={name}");
        return capabilityMajor switch
        {
            >= 8 => new(new CastPolicy(ScalarType.BFloat16, true), $"compute capability {capabilityMajor}.x has bf16"),
            { } major => new(new CastPolicy(ScalarType.Float16, true), $"compute capability {major}.x: fp16 with loss scaling"),
            null => new(new CastPolicy(ScalarType.Float16, true), "compute capability unknown: fp16 with loss scaling"),
        };
    }
}
