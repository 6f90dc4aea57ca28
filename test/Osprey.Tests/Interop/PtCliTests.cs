using Osprey.Interop;
using Osprey.Models;
using Osprey.Tests.Cli;
using Osprey.Tests.Data;
using Osprey.Tests.Models;

namespace Osprey.Tests.Interop;

/// <summary>The <c>osprey</c> command takes a <c>.pt</c> checkpoint wherever it takes <c>model=</c> (summary, export, predict).</summary>
public class PtCliTests
{
    [Fact]
    public void SummaryExportAndPredictTakeAPtCheckpoint()
    {
        string dir = TestModels.TempDir();
        try
        {
            string pt = Path.Combine(dir, "yolov8n.pt");
            using (var model = DetectionModel.FromYaml("yolov8n.yaml"))
                UltralyticsCheckpointWriter.Save(model, pt, new CheckpointMetadata(0, null, new Dictionary<string, object?> { ["data"] = "coco8.yaml" }));

            var (code, output, error) = CliAppTests.Run("summary", $"model={pt}");
            Assert.True(code == 0, error);
            Assert.Contains("YOLOv8n summary: 225 layers, 3,157,200 parameters, 3,157,184 gradients, 8.7 GFLOPs", output);

            (code, output, error) = CliAppTests.Run("export", $"model={pt}", "format=onnx", "imgsz=64");
            Assert.True(code == 0, error);
            Assert.True(File.Exists(Path.Combine(dir, "yolov8n.onnx")), output);

            string bus = Path.Combine(DataTestFiles.SharedData, "images", "bus.jpg");
            (code, output, error) = CliAppTests.Run("predict", $"model={pt}", $"source={bus}", "imgsz=64", $"project={dir}");
            Assert.True(code == 0, error);
            Assert.True(File.Exists(Path.Combine(dir, "predict", "bus.jpg")), output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
