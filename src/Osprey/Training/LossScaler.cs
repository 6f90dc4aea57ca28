using Osprey.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>The loss scaler's state (saved in the checkpoint so that a resumed fp16 run continues exactly).</summary>
/// <param name="Scale">Current loss scale.</param>
/// <param name="GrowthTracker">Consecutive optimiser steps without an inf/NaN gradient since the last change.</param>
public sealed record LossScalerState(double Scale, int GrowthTracker);

/// <summary>
/// Dynamic loss scaling for fp16 training with PyTorch's <c>GradScaler</c> semantics: the loss is multiplied by
/// <see cref="Scale"/> (initially 2^16) before backward; before the optimiser step the fp32 gradients are
/// multiplied by 1/scale (before clipping, which therefore sees the true norm) and checked; a step whose gradients
/// hold an inf or NaN anywhere (on any rank) is skipped and the scale multiplied by 0.5; after 2000 consecutive good
/// steps it is multiplied by 2. bf16 needs no scaler (its range is fp32's).
/// </summary>
public sealed class LossScaler
{
    /// <summary>GradScaler's init_scale.</summary>
    public const double DefaultInitialScale = 65536.0;
    /// <summary>GradScaler's growth_factor.</summary>
    public const double DefaultGrowthFactor = 2.0;
    /// <summary>GradScaler's backoff_factor.</summary>
    public const double DefaultBackoffFactor = 0.5;
    /// <summary>GradScaler's growth_interval.</summary>
    public const int DefaultGrowthInterval = 2000;

    readonly DataParallel _parallel;

    /// <summary>A scaler with PyTorch's defaults, or the given constants; under data parallel every rank takes the same
    /// skip decision through <paramref name="parallel"/> (null: one process).</summary>
    public LossScaler(DataParallel? parallel = null, double initialScale = DefaultInitialScale, double growthFactor = DefaultGrowthFactor,
        double backoffFactor = DefaultBackoffFactor, int growthInterval = DefaultGrowthInterval)
    {
        _parallel = parallel ?? new DataParallel();
        if (initialScale <= 0 || growthFactor <= 1 || backoffFactor is <= 0 or >= 1 || growthInterval < 1)
            throw new ArgumentException("loss scaler: scale > 0, growth > 1, 0 < backoff < 1, interval ≥ 1");
        Scale = initialScale;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
    }

    /// <summary>The factor the loss is multiplied by.</summary>
    public double Scale { get; private set; }

    /// <summary>Good steps since the scale last changed.</summary>
    public int GrowthTracker { get; private set; }

    /// <summary>Scale multiplier after <see cref="GrowthInterval"/> good steps.</summary>
    public double GrowthFactor { get; }

    /// <summary>Scale multiplier after a step with inf/NaN gradients.</summary>
    public double BackoffFactor { get; }

    /// <summary>Good steps before the scale grows.</summary>
    public int GrowthInterval { get; }

    /// <summary>Optimiser steps skipped so far (inf/NaN gradients).</summary>
    public long SkippedSteps { get; private set; }

    /// <summary>The state to checkpoint.</summary>
    public LossScalerState State => new(Scale, GrowthTracker);

    /// <summary>Restores a checkpointed state.</summary>
    public void Restore(LossScalerState state)
    {
        Scale = state.Scale;
        GrowthTracker = state.GrowthTracker;
    }

    /// <summary><paramref name="loss"/> × scale (what backward runs on).</summary>
    public Tensor ScaleLoss(Tensor loss)
    {
        using var scale = tensor(Scale, dtype: loss.dtype, device: loss.device);
        return loss * scale;
    }

    /// <summary>
    /// Multiplies every gradient (the flat gradient buffers) by 1/scale in place and returns true when any of them holds an
    /// inf or NaN, on this rank or on any other (<see cref="DataParallel.AnyRank"/>): every rank then takes the same
    /// decision. One device → host sync.
    /// </summary>
    public bool UnscaleAndCheck(IReadOnlyList<Tensor> gradients, Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor? found = null;                                                   // () float32: 1 when non-finite
        if (gradients.Count > 0)
        {
            using Scalar inverse = (1.0 / Scale).ToScalar();
            foreach (var grad in gradients)
            {
                grad.mul_(inverse);
                var bad = grad.isfinite().logical_not().any().to(ScalarType.Float32);
                found = found is null ? bad : found.maximum(bad);
            }
        }
        found ??= zeros(1, dtype: ScalarType.Float32, device: device);
        return _parallel.AnyRank(found);                                      // note: a device → host sync point
    }

    /// <summary>
    /// After the step: backs off after inf/NaN (and counts the skipped step), grows after
    /// <see cref="GrowthInterval"/> good steps in a row (torch's <c>_amp_update_scale_</c>).
    /// </summary>
    public void Update(bool foundInf)
    {
        if (foundInf)
        {
            Scale *= BackoffFactor;
            GrowthTracker = 0;
            SkippedSteps++;
            return;
        }
        if (++GrowthTracker < GrowthInterval) return;
        double grown = Scale * GrowthFactor;
        if (double.IsFinite(grown) && grown <= float.MaxValue) Scale = grown;  // the scale is an fp32 tensor in torch
        GrowthTracker = 0;
    }
}
