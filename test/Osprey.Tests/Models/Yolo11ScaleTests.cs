using Osprey.Models;
using Xunit.Abstractions;

namespace Osprey.Tests.Models;

/// <summary>YOLO11 from the embedded yolo11.yaml: Ultralytics' published parameter counts and GFLOPs per scale.</summary>
public class Yolo11ScaleTests(ITestOutputHelper output)
{
    // yolo11.yaml's own comments (Ultralytics): "summary: 319 layers, 2624080 parameters, 2624064 gradients, 6.6 GFLOPs" …
    [Theory]
    [InlineData("yolo11n.yaml", 2_624_080L, 6.6)]
    [InlineData("yolo11s.yaml", 9_458_752L, 21.7)]
    [InlineData("yolo11m.yaml", 20_114_688L, 68.5)]
    [InlineData("yolo11l.yaml", 25_372_160L, 87.6)]
    [InlineData("yolo11x.yaml", 56_966_176L, 196.0)]
    public void ParameterCountAndGflopsMatchUltralytics(string name, long parameters, double gflops)
    {
        using var model = DetectionModel.FromYaml(name);
        double measured = model.Gflops(640);
        output.WriteLine($"{name}: {model.ParameterCount:N0} parameters, {measured:F3} GFLOPs at 640");
        foreach (var row in model.Summary()) output.WriteLine($"{row.Index,3} {row.From,12} {row.Repeats} {row.Parameters,10} {row.Module,-12} {row.Arguments}");
        Assert.Equal(parameters, model.ParameterCount);
        Assert.Equal(parameters - 16, model.GradientCount); // DFL's arange(16) is fixed
        Assert.InRange(measured, gflops * 0.98, gflops * 1.02);
        Assert.Equal(parameters, model.Summary().Sum(row => row.Parameters));
    }
}
