using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using static TorchSharp.torch;

namespace Osprey.Tests.Models;

/// <summary>New blocks and heads plug in through the public seams (a family, a head subclass) without library edits.</summary>
public class ModelFamilyTests
{
    [Fact]
    public void BlockOfAFamilyOutsideTheLibraryBuildsFromYaml()
    {
        var config = ModelConfig.Parse(ToyFamily.Yaml, "toy.yaml");
        var unknown = Assert.Throws<InvalidDataException>(() => new DetectionModel(config));
        Assert.Contains("unknown module 'ToyDown'", unknown.Message);

        var registry = ModuleRegistry.Default.With(new ToyFamily());
        using var model = new DetectionModel(config, registry);
        Assert.Same(registry, model.Registry);
        // ToyDown(c1, c2): 3×3 weights 9·c1·c2 plus c2 biases.
        //   3→8: 216 + 8 = 224; 8→16: 1152 + 16 = 1168; 16→16: 2304 + 16 = 2320; 16→32: 4608 + 32 = 4640; 32→32: 9216 + 32 = 9248.
        // Detect(nc 3, ch [16, 32, 32]): c2 = max(16, 16/4, 64) = 64, c3 = max(16, min(3, 100)) = 16. Per level of x channels:
        //   box   Conv(x, 64, 3) 576x + 128, Conv(64, 64, 3) 36864 + 128, Conv2d(64, 64, 1) 4096 + 64  → 576x + 41280
        //   class Conv(x, 16, 3) 144x + 32,  Conv(16, 16, 3) 2304 + 32,    Conv2d(16, 3, 1) 48 + 3     → 144x + 2419
        //   → 720x + 43699: 55219 (x = 16) + 2 × 66739 (x = 32) = 188697, plus DFL's 16 = 188713.
        Assert.Equal(new long[] { 224, 1168, 2320, 4640, 9248, 188_713 }, model.Summary().Select(r => r.Parameters));
        Assert.Equal("[16, 32]", model.Summary()[3].Arguments);
        Assert.Equal(206_313, model.ParameterCount);
        Assert.Equal(new[] { 8f, 16f, 32f }, model.Strides);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = rand(2, 3, 64, 96);
        var maps = model.ForwardFeatures(images);                      // no = 4·16 + 3 = 67 rows, at /8, /16, /32
        Assert.Equal(new[] { new long[] { 2, 67, 8, 12 }, new long[] { 2, 67, 4, 6 }, new long[] { 2, 67, 2, 3 } },
            maps.Select(m => m.shape));
        model.eval();
        Assert.Equal(new long[] { 2, 7, 96 + 24 + 6 }, model.Predict(images).shape);   // (b, 4 + nc, A)
    }

    [Fact]
    public void RegistriesAreFixedOnceBuiltAndWithLeavesTheOriginalAlone()
    {
        var error = Assert.Throws<InvalidOperationException>(() =>
            ModuleRegistry.Default.Register(c => new LayerBuild(TorchSharp.torch.nn.Identity(), c.InputChannel, "[]"), false, "Late"));
        Assert.Contains("With(", error.Message);
        Assert.False(ModuleRegistry.Default.TryGet("Late", out _, out _));

        var extended = ModuleRegistry.Default.With(new ToyFamily());
        Assert.Equal(ModuleRegistry.KnownFamilies, ModuleRegistry.Default.Families);
        Assert.Equal(ModuleRegistry.KnownFamilies.Append(extended.Families[^1]), extended.Families);
        Assert.True(extended.TryGet("ToyDown", out _, out bool consumesRepeats) && !consumesRepeats);
        Assert.True(extended.TryGet("C2f", out _, out _));
        Assert.False(ModuleRegistry.Default.TryGet("ToyDown", out _, out _));
        Assert.Equal(ModuleRegistry.Default.Names.Append("ToyDown").Order(StringComparer.Ordinal), extended.Names);
    }

    [Fact]
    public void CastPolicyReachesEveryAwareBlock()
    {
        using var model = new DetectionModel(ModelConfig.Parse(ToyFamily.Yaml, "toy.yaml"), ModuleRegistry.Default.With(new ToyFamily()));
        var toyOutputs = new List<ScalarType>();
        var hooks = model.modules().OfType<ToyDown>()
            .Select(toy => toy.register_forward_hook((_, _, output) => { toyOutputs.Add(output.dtype); return output; })).ToList();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = rand(1, 3, 64, 64);

        model.UseCastPolicy(new CastPolicy(ScalarType.BFloat16));
        var maps = model.ForwardFeatures(images);
        Assert.Equal(Enumerable.Repeat(ScalarType.BFloat16, 5), toyOutputs);
        Assert.All(model.modules().OfType<ICastPolicyAware>(), block => Assert.Equal(ScalarType.BFloat16, block.Policy.ComputeType));
        Assert.All(maps, m => Assert.Equal(ScalarType.Float32, m.dtype));

        toyOutputs.Clear();
        model.UseCastPolicy(CastPolicy.Float32);
        model.ForwardFeatures(images);
        Assert.Equal(Enumerable.Repeat(ScalarType.Float32, 5), toyOutputs);
        foreach (var hook in hooks) hook.remove();
    }

    [Fact]
    public void Yolo11ClassBranchIsOneOverrideOfTheV8Head()
    {
        using var v8 = DetectionModel.FromYaml("yolov8n.yaml");
        using var model = DetectionModel.FromYaml("yolov8n.yaml", registry: ModuleRegistry.Default.With(new DepthwiseDetectFamily()));
        Assert.IsType<DepthwiseDetect>(model.Head);
        Assert.IsType<Detect>(v8.Head);
        // Ultralytics' YOLO11n table: "23 [16, 19, 22] 1 464912 ultralytics.nn.modules.head.Detect [80, [64, 128, 256]]",
        // the same channels as yolov8n's head (897,664 parameters); the whole model: 3,157,200 − 897,664 + 464,912.
        Assert.Equal(464_912, model.Summary()[22].Parameters);
        Assert.Equal(897_664, v8.Summary()[22].Parameters);
        Assert.Equal(2_724_448, model.ParameterCount);

        // Ultralytics' keys: cv3.{level}.{0|1}.{0: DWConv | 1: Conv} and cv3.{level}.2 for the output; cv2 and dfl as in v8.
        var state = model.state_dict();
        Assert.Equal(new long[] { 64, 1, 3, 3 }, state["model.22.cv3.0.0.0.conv.weight"].shape);
        Assert.Equal(new long[] { 80, 64, 1, 1 }, state["model.22.cv3.0.0.1.conv.weight"].shape);
        Assert.Equal(new long[] { 80, 1, 3, 3 }, state["model.22.cv3.2.1.0.conv.weight"].shape);
        Assert.Equal(new long[] { 80, 80, 1, 1 }, state["model.22.cv3.1.1.1.conv.weight"].shape);
        Assert.Equal(new long[] { 80, 80, 1, 1 }, state["model.22.cv3.2.2.weight"].shape);
        Assert.Equal(v8.state_dict().Keys.Where(k => !k.StartsWith("model.22.cv3.", StringComparison.Ordinal)),
            state.Keys.Where(k => !k.StartsWith("model.22.cv3.", StringComparison.Ordinal)));
        // The shared bias prior reaches the overridden branch's output: log(5 / 80 / (640 / 32)²) at P5.
        Assert.All(state["model.22.cv3.2.2.bias"].data<float>().ToArray(), b => Assert.Equal(Math.Log(5.0 / 80 / 400), b, 5));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        Assert.Equal(new long[] { 1, 84, 64 + 16 + 4 }, model.Predict(rand(1, 3, 64, 64)).shape);
    }
}
