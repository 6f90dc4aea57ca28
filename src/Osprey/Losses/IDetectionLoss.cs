using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>
/// A detection head's training loss (<see cref="Models.Heads.DetectionHead.CreateLoss"/>): the v8 loss
/// (<see cref="DetectionLoss"/>) or YOLOv10's end-to-end loss (<see cref="E2EDetectLoss"/>). The trainer's step and the
/// validator use it through this interface.
/// </summary>
public interface IDetectionLoss
{
    /// <summary>The settings (gains, strides, the data-parallel normaliser).</summary>
    DetectionLossOptions Options { get; }

    /// <summary>Loss of one batch.</summary>
    /// <param name="maps">The head's training maps (<see cref="Models.DetectionModel.ForwardFeatures"/>).</param>
    /// <param name="targets">Collated ground truth (normalised centre-xywh).</param>
    DetectionLossResult Compute(IReadOnlyList<Tensor> maps, DetectionTargets targets);

    /// <summary>
    /// Data parallel: a rank without a batch in this global batch still joins every sum over the ranks that
    /// <see cref="Compute"/> would make (<see cref="DetectionLossOptions.GlobalSum"/>), with zero.
    /// </summary>
    void WithoutBatch(Device device);
}
