using Osprey.Runtime;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Losses;
using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>What one micro-step gave: the global batch's loss items (summed over the ranks) and whether they were finite.</summary>
public readonly record struct StepResult(float Box, float Cls, float Dfl, bool Finite)
{
    /// <summary>The loss terms' items (<see cref="ILossTerm"/>, e.g. dis_loss), summed over the ranks; empty without terms.</summary>
    public IReadOnlyList<float> Terms { get; init; } = Array.Empty<float>();
}

/// <summary>
/// One training micro-step, the same for the trainer and the benchmarks: rank 0's BatchNorm statistics (data parallel
/// without sync_bn), forward, the head's loss (v8, or YOLOv10's end-to-end) normalised over the global batch, its items summed over the ranks, backward,
/// and on the optimiser micro-step the gradient average over the ranks (<see cref="Replica"/>) and the
/// <see cref="WeightUpdate"/>. Each phase ends with a lap of the <see cref="IStepClock"/>.
/// </summary>
/// <param name="model">The trained model.</param>
/// <param name="replica">Its data-parallel replica (the identity in one process).</param>
/// <param name="loss">The loss, its normaliser summed over the ranks.</param>
/// <param name="update">The optimiser step.</param>
/// <param name="scaler">fp16 loss scaling, or null (then a non-finite loss ends the run).</param>
/// <param name="terms">Terms added to the loss (distillation), or null: then the step is the plain detection step.</param>
public sealed class TrainStep(DetectionModel model, Replica replica, IDetectionLoss loss, WeightUpdate update, LossScaler? scaler,
    IReadOnlyList<ILossTerm>? terms = null)
{
    readonly IReadOnlyList<ILossTerm> _terms = terms ?? Array.Empty<ILossTerm>();

    bool _overflowed;                                                     // fp16: a micro-step since the last optimiser step overflowed

    /// <summary>An epoch starts: an overflow in the previous epoch's last micro-steps (after its last optimiser step) does not
    /// skip this epoch's first step, as a run resumed at the epoch boundary would not either.</summary>
    public void BeginEpoch() => _overflowed = false;

    /// <summary>Runs one micro-step on a loader batch (<paramref name="epoch"/> is for messages).</summary>
    public StepResult Run(Batch batch, Device device, bool optimizerStep, IStepClock clock, int epoch)
    {
        replica.BeforeForward();
        var images = Input(batch, device, model.Policy);                 // (b, 3, H, W) in [0, 1]
        var targets = new DetectionTargets(batch.BatchIndexOn(device), batch.ClassesOn(device), batch.BoxesOn(device));
        clock.Lap(StepPhase.Copy);
        return Run(images, targets, optimizerStep, clock, $"epoch {epoch + 1}, batch {batch.Index + 1}", batch.GlobalSize);
    }

    /// <summary>
    /// Runs one micro-step on images already on the device (after <see cref="Replica.BeforeForward"/>):
    /// <paramref name="optimizerStep"/> is true on the micro-step that ends an accumulation (the only one whose gradients
    /// are averaged over the ranks). fp16: an overflow in the forward skips the optimiser step and backs the scale off, as
    /// GradScaler does with the inf gradients it would give. <paramref name="where"/> names the step in errors;
    /// <paramref name="globalBatch"/> is the global batch's image count when the ranks' shares may differ (0: equal shares).
    /// </summary>
    public StepResult Run(Tensor images, DetectionTargets targets, bool optimizerStep, IStepClock clock, string where, int globalBatch = 0)
    {
        Tensor[] maps;
        Tensor[]? headInputs = null;
        if (_terms.Count == 0) maps = model.ForwardFeatures(images);
        else (maps, headInputs) = model.ForwardWithHeadInputs(images);
        clock.Lap(StepPhase.Forward);
        using var result = loss.Compute(maps, targets);
        var extra = headInputs is null ? null : _terms.Select(t => t.Compute(images, headInputs)).ToList();
        try
        {
            var local = result.ItemValues();                              // note: a device → host sync point
            clock.Lap(StepPhase.Loss);
            var (box, cls, dfl, termItems) = GlobalItems(local, extra, clock); // the global batch's items
            bool finite = float.IsFinite(box + cls + dfl + termItems.Sum()); // the same on every rank (global sums)
            if (!finite && scaler is null)
                throw new InvalidOperationException($"loss is not finite at {where} (box {box}, cls {cls}, dfl {dfl}" +
                    string.Concat(_terms.Zip(termItems, (t, v) => $", {t.Name} {v}")) + "); lower lr0 or check the labels");
            _overflowed |= !finite;
            if (finite)
            {
                var total = replica.ScaleLoss(extra is null ? result.Total : extra.Aggregate(result.Total, (sum, term) => sum.Plus(term.Total)),
                    images.shape[0], globalBatch);
                (scaler is null ? total : scaler.ScaleLoss(total)).backward(); // fp16: the scaled loss
            }
            clock.Lap(StepPhase.Backward);
            if (optimizerStep)
            {
                replica.AverageGradients(clock);                          // the only gradient sync
                update.Apply(skip: _overflowed);
                _overflowed = false;
                clock.Lap(StepPhase.Optimizer);
            }
            return new StepResult(box, cls, dfl, finite) { Terms = termItems };
        }
        finally
        {
            extra?.ForEach(e => e.Dispose());
            if (headInputs is not null) foreach (var input in headInputs) input.Dispose();
        }
    }

    // The items summed over the ranks: the detection loss's alone as before, or with the terms' in one all-reduce.
    (float Box, float Cls, float Dfl, float[] Terms) GlobalItems((float Box, float Cls, float Dfl) local,
        List<LossTermResult>? extra, IStepClock clock)
    {
        if (extra is null)
        {
            var (box, cls, dfl) = replica.SumItems(local, clock);
            return (box, cls, dfl, Array.Empty<float>());
        }
        var values = new double[] { local.Box, local.Cls, local.Dfl }
            .Concat(extra.Select(e => (double)e.Item.to(CPU).item<float>())).ToArray();
        double[] sums = replica.SumItems(values, clock);
        return ((float)sums[0], (float)sums[1], (float)sums[2], sums.Skip(3).Select(v => (float)v).ToArray());
    }

    /// <summary>The batch's images as float in [0, 1], channels-last when the policy asks (converted after the float
    /// conversion, so the prefetched device copy is used).</summary>
    static Tensor Input(Batch batch, Device device, CastPolicy policy)
    {
        var images = batch.ImagesAsFloat(device);                         // uses the prefetched device copy when there is one
        if (!policy.ChannelsLast) return images;
        using (images) return CastPolicy.ToChannelsLast(images);
    }
}
