using Osprey.Models;
using Xunit.Abstractions;

namespace Osprey.Tests.Models;

public class YoloV8ScaleTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("yolov8n.yaml", 3_157_200L, 8.7)]
    [InlineData("yolov8s.yaml", 11_166_560L, 28.6)]
    [InlineData("yolov8m.yaml", 25_902_640L, 78.9)]
    [InlineData("yolov8l.yaml", 43_691_520L, 165.2)]
    [InlineData("yolov8x.yaml", 68_229_648L, 257.8)]
    public void ParameterCountAndGflopsMatchUltralytics(string name, long parameters, double gflops)
    {
        using var model = DetectionModel.FromYaml(name);
        Assert.Equal(parameters, model.ParameterCount);
        Assert.Equal(parameters - 16, model.GradientCount); // DFL's arange(16) is fixed
        double measured = model.Gflops(640);
        output.WriteLine($"{name}: {model.ParameterCount:N0} parameters, {measured:F3} GFLOPs at 640");
        Assert.InRange(measured, gflops * 0.98, gflops * 1.02);
        Assert.Equal(parameters, model.Summary().Sum(row => row.Parameters));
    }
}
