using OpenCvSharp;
using Osprey.Inference;

namespace Osprey.Serving;

/// <summary>What the inference worker made of one <see cref="InferenceItem"/>.</summary>
/// <param name="Prediction">Detections in the image's pixels.</param>
/// <param name="Model">The model version that answered.</param>
/// <param name="QueueWait">Time from enqueue to the batch's dispatch.</param>
/// <param name="Inference">Time of the whole batch's prediction (letterbox, model, NMS).</param>
/// <param name="BatchSize">Items in that batch.</param>
public sealed record InferenceResult(Prediction Prediction, ModelInfo Model, TimeSpan QueueWait, TimeSpan Inference, int BatchSize);

/// <summary>
/// One image waiting for the inference worker: a request's body or (later) a stream's frame. The submitter owns
/// <see cref="Image"/> and must keep it alive until <see cref="Result"/> completes — the worker reads it then — and
/// dispose it afterwards. <see cref="Result"/> always completes once the item was queued: with the prediction, or with
/// the exception that failed the batch.
/// </summary>
public sealed class InferenceItem
{
    readonly TaskCompletionSource<InferenceResult> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="image">A BGR image (any size).</param>
    /// <param name="origin">Who sent it: "request", or a stream's name (the <c>source</c> label of the frame metrics).</param>
    public InferenceItem(Mat image, string origin)
    {
        Image = image;
        Origin = origin;
    }

    /// <summary>The BGR image.</summary>
    public Mat Image { get; }

    /// <summary>"request" or a stream's name.</summary>
    public string Origin { get; }

    /// <summary>The prediction and the version that made it.</summary>
    public Task<InferenceResult> Result => completion.Task;

    internal void Complete(InferenceResult result) => completion.TrySetResult(result);

    internal void Fail(Exception error) => completion.TrySetException(error);
}
