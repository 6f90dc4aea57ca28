using Osprey.Models;
using Osprey.Models.Building;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>Small models and helpers shared by the model tests.</summary>
internal static class TestModels
{
    /// <summary>yolov8.yaml's layout with an extra tiny scale "t" (channels 8…64) so forwards take milliseconds.</summary>
    public static string TinyYaml(int nc = 80) => $$"""
        nc: {{nc}}
        scale: t
        scales:
          t: [0.33, 0.0625, 1024]
          n: [0.33, 0.25, 1024]
        backbone:
          - [-1, 1, Conv, [64, 3, 2]]
          - [-1, 1, Conv, [128, 3, 2]]
          - [-1, 3, C2f, [128, True]]
          - [-1, 1, Conv, [256, 3, 2]]
          - [-1, 6, C2f, [256, True]]
          - [-1, 1, Conv, [512, 3, 2]]
          - [-1, 6, C2f, [512, True]]
          - [-1, 1, Conv, [1024, 3, 2]]
          - [-1, 3, C2f, [1024, True]]
          - [-1, 1, SPPF, [1024, 5]]
        head:
          - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
          - [[-1, 6], 1, Concat, [1]]
          - [-1, 3, C2f, [512]]
          - [-1, 1, Upsample, [None, 2, "nearest"]]
          - [[-1, 4], 1, Concat, [1]]
          - [-1, 3, C2f, [256]]
          - [-1, 1, Conv, [256, 3, 2]]
          - [[-1, 12], 1, Concat, [1]]
          - [-1, 3, C2f, [512]]
          - [-1, 1, Conv, [512, 3, 2]]
          - [[-1, 9], 1, Concat, [1]]
          - [-1, 3, C2f, [1024]]
          - [[15, 18, 21], 1, Detect, [nc]]
        """;

    public static DetectionModel Tiny(int nc = 80) => new(ModelConfig.Parse(TinyYaml(nc), "tiny.yaml"));

    /// <summary>Randomises every BN's running stats and affine params so fusion mistakes show up.</summary>
    public static void RandomiseBatchNorms(DetectionModel model, long seed = 1)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var (name, tensor) in model.state_dict())
        {
            if (name.EndsWith(".bn.running_mean", StringComparison.Ordinal) || name.EndsWith(".bn.bias", StringComparison.Ordinal))
                tensor.copy_(randn(tensor.shape, generator: generator) * 0.2);
            else if (name.EndsWith(".bn.running_var", StringComparison.Ordinal) || name.EndsWith(".bn.weight", StringComparison.Ordinal))
                tensor.copy_(rand(tensor.shape, generator: generator) + 0.5);
        }
    }

    /// <summary>Bit-exact equality: same dtype, shape and every element.</summary>
    public static bool SameAs(this Tensor tensor, Tensor other) =>
        tensor.dtype == other.dtype && tensor.shape.SequenceEqual(other.shape) && tensor.eq(other).all().item<bool>();

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "osprey-model-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
