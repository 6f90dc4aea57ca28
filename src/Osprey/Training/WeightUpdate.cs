using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// One optimiser step on the flat buffers (<see cref="FlatParameters"/>), in GradScaler's order: fp16 unscaling and the
/// inf/NaN check (a step with an inf/NaN gradient on any rank is skipped everywhere and the scale backs off), clipping of the
/// true gradients at <see cref="MaxGradientNorm"/>, SGD or AdamW, zeroing, and, as Ultralytics after every optimiser step,
/// the EMA update. Nothing here waits for the device except the fp16 check.
/// </summary>
/// <param name="model">The trained model (the EMA averages it).</param>
/// <param name="optimizer">The optimiser, over the flat layout.</param>
/// <param name="ema">The EMA of the model.</param>
/// <param name="scaler">fp16 loss scaling, or null.</param>
public sealed class WeightUpdate(nn.Module model, GroupedOptimizer optimizer, ModelEma ema, LossScaler? scaler)
{
    /// <summary>Gradient-norm clip, as Ultralytics (max_norm 10).</summary>
    public const double MaxGradientNorm = 10.0;

    /// <summary>Steps from the accumulated gradients; <paramref name="skip"/>: skip without looking (fp16: the forward
    /// overflowed, the same on every rank), which still backs the scale off, zeroes and updates the EMA.</summary>
    public void Apply(bool skip = false)
    {
        using (var scope = NewDisposeScope())
        {
            FlatParameters flat = optimizer.Flat;
            flat.AttachGradients();                                       // a gradient something replaced is copied in
            var gradients = flat.GradientBuffers.ToList();
            skip = skip || (scaler?.UnscaleAndCheck(gradients, flat.Groups[0].Values.device) ?? false);
            if (!skip)
            {
                GradientClipping.ClipNorm(gradients, MaxGradientNorm);
                optimizer.Step();
            }
            scaler?.Update(skip);
        }
        optimizer.ZeroGrad();
        ema.Update(model);
    }
}
