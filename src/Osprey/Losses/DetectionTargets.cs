using static TorchSharp.torch;

namespace Osprey.Losses;

/// <summary>
/// Ground truth of one batch as the data loader collates it (Ultralytics <c>batch_idx</c>, <c>cls</c>, <c>bboxes</c>).
/// </summary>
/// <param name="BatchIndex">shape(N) image index of each object in the batch.</param>
/// <param name="Classes">shape(N) or (N, 1) class ids.</param>
/// <param name="Boxes">shape(N, 4) centre-xywh normalised to [0, 1] by the (letterboxed) input size.</param>
public sealed record DetectionTargets(Tensor BatchIndex, Tensor Classes, Tensor Boxes);
