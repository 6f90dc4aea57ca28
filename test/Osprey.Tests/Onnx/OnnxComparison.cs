using Osprey.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>Decoded outputs (b, 4 + nc, A) compared: boxes relative to max(1, |value|), scores absolutely.</summary>
internal static class OnnxComparison
{
    public static (float Boxes, float Scores) Difference(Tensor ours, Tensor theirs)
    {
        using var scope = NewDisposeScope();
        Assert.Equal(ours.shape, theirs.shape);
        var diff = (ours - theirs).abs();
        float boxes = (diff.narrow(1, 0, 4) / ours.narrow(1, 0, 4).abs().clamp_min(1)).max().item<float>();
        float scores = diff.narrow(1, 4, ours.shape[1] - 4).max().item<float>();
        return (boxes, scores);
    }

    /// <summary>ONNX Runtime on <paramref name="path"/> gives <paramref name="model"/>'s Predict within 1e-4 on each input;
    /// returns the largest differences seen.</summary>
    public static (float Boxes, float Scores) AssertRunsLikeTorchSharp(DetectionModel model, string path, params Tensor[] inputs)
    {
        using var ort = new OrtRunner(path);
        using var noGrad = no_grad();
        float worstBoxes = 0, worstScores = 0;
        foreach (var input in inputs)
        {
            var (boxes, scores) = Difference(model.Predict(input), ort.Run(input));
            Assert.True(boxes < 1e-4 && scores < 1e-4, $"{string.Join("x", input.shape)}: box rel {boxes}, score {scores}");
            (worstBoxes, worstScores) = (Math.Max(worstBoxes, boxes), Math.Max(worstScores, scores));
        }
        return (worstBoxes, worstScores);
    }

    public static string TempPath(string what) => Path.Combine(Path.GetTempPath(), $"osprey-{what}-{Guid.NewGuid():N}.onnx");
}
