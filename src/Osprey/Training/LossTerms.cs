using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// A term added to the detection loss in every training micro-step (knowledge distillation's <c>dis_loss</c>). A callback
/// registers it while the run is set up (<see cref="ModelBuilt"/> → <see cref="TrainingRun.AddLossTerm"/>); the run then
/// lays out <see cref="Trainable"/>'s parameters with the model's in the optimiser's groups (so the optimiser, clipping,
/// the fp16 scaler and the data-parallel gradient average cover them), saves them in the full-state checkpoint only (not
/// in the weights files, not in the EMA), logs the term as a loss column, and <see cref="TrainStep"/> adds it to the loss.
/// </summary>
public interface ILossTerm
{
    /// <summary>The loss item's name (<c>dis_loss</c>): results.csv's <c>train/…</c> and <c>val/…</c> columns, TensorBoard,
    /// the progress line.</summary>
    string Name { get; }

    /// <summary>Parameters that train with the model (distillation's projector).</summary>
    nn.Module Trainable { get; }

    /// <summary>
    /// The term on this rank's micro-batch: <paramref name="images"/> as the model got them, the model's
    /// <paramref name="headInputs"/> (<see cref="Models.DetectionModel.ForwardWithHeadInputs"/>). Normalised over the global
    /// batch as the detection loss is (its sums over the ranks through <see cref="Distributed.DataParallel.SumOverRanks(Tensor)"/>),
    /// so that the items summed over the ranks are the one-process items.
    /// </summary>
    LossTermResult Compute(Tensor images, IReadOnlyList<Tensor> headInputs);
}

/// <summary>A loss term of one micro-batch; dispose to free the tensors.</summary>
/// <param name="Total">Scalar to back-propagate (item · rank batch, as the detection loss), with gradient.</param>
/// <param name="Item">Detached scalar: this rank's share of the global batch's item (gain applied, not times the batch).</param>
public sealed record LossTermResult(Tensor Total, Tensor Item) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Total.Dispose();
        Item.Dispose();
    }
}
