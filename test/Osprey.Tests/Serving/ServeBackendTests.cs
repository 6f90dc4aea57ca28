using System.Net;
using System.Net.Http.Json;
using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>
/// The serving backend's rule: <c>backend=auto</c> on the CPU exports weights to ONNX in a folder the server owns and
/// serves them in ONNX Runtime (hot swaps too); <c>backend=torch</c> keeps TorchSharp; the folder goes with the server.
/// </summary>
public class ServeBackendTests
{
    [Fact]
    public async Task AutoOnTheCpuServesWeightsInOnnxRuntimeOnAnExportTheServerOwns()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), b = ServeTestSupport.WriteTinyModel(dir, "b", seed: 2);
            var jpeg = ServeTestSupport.Jpeg(160, 96, seed: 4);
            string folder;
            await using (var scope = await ServerScope.StartAsync(new ServeOptions { Model = a, Predict = ServeTestSupport.TinyOptions }))
            {
                var first = (await ServeTestSupport.JsonOf(await scope.Client.GetAsync("/v1/models"))).GetProperty("model");
                Assert.Equal("onnxruntime", first.GetProperty("backend").GetString());
                Assert.Equal(a, first.GetProperty("path").GetString());
                string export = first.GetProperty("onnx_export").GetString()!;
                Assert.True(File.Exists(export), export);
                folder = Path.GetDirectoryName(export)!;
                Assert.StartsWith(Path.Combine(Path.GetTempPath(), "osprey-serve-"), folder);
                Assert.Contains(scope.Events, e => e.Kind == ServeEventKind.Loaded && e.Message.Contains($"onnxruntime on its export {export}", StringComparison.Ordinal));

                // the answers are the weights' own (TorchSharp's), to float rounding
                using var response = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
                AssertSameDetections(Direct(a, jpeg), ServerHttpTests.ToPrediction(await ServeTestSupport.JsonOf(response)));

                using var swap = await scope.Client.PostAsJsonAsync("/v1/models", new { model = b });
                Assert.Equal(HttpStatusCode.OK, swap.StatusCode);
                var second = (await ServeTestSupport.JsonOf(swap)).GetProperty("model");
                Assert.Equal((2, "onnxruntime"), (second.GetProperty("version").GetInt32(), second.GetProperty("backend").GetString()));
                string export2 = second.GetProperty("onnx_export").GetString()!;
                Assert.NotEqual(export, export2);
                Assert.Equal(folder, Path.GetDirectoryName(export2));
                Assert.False(File.Exists(export), "the swapped-out model's export is deleted with it");
                using var after = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
                AssertSameDetections(Direct(b, jpeg), ServerHttpTests.ToPrediction(await ServeTestSupport.JsonOf(after)));
            }
            Assert.False(Directory.Exists(folder), $"{folder} outlived the server");

            await using (var torch = await ServerScope.StartAsync(new ServeOptions { Model = a, Predict = ServeTestSupport.TinyOptions, Backend = "torch" }))
            {
                var model = (await ServeTestSupport.JsonOf(await torch.Client.GetAsync("/v1/models"))).GetProperty("model");
                Assert.Equal("torch", model.GetProperty("backend").GetString());
                Assert.False(model.TryGetProperty("onnx_export", out _));
            }
            Assert.True(ServeBackend.ExportsToOnnx("best.safetensors", "auto", null));
            Assert.True(ServeBackend.ExportsToOnnx("yolov8n.yaml", "auto", TorchSharp.torch.CPU));
            Assert.False(ServeBackend.ExportsToOnnx("best.onnx", "auto", null));
            Assert.False(ServeBackend.ExportsToOnnx("best.safetensors", "torch", null));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    static Prediction Direct(string model, byte[] jpeg)
    {
        using var predictor = Predictor.Load(model, ServeTestSupport.TinyOptions);
        using var image = Cv2.ImDecode(jpeg, ImreadModes.Color);
        return predictor.Predict(image);
    }

    static void AssertSameDetections(Prediction expected, Prediction served)
    {
        Assert.Equal(expected.Detections.Count, served.Detections.Count);
        Assert.Equal(3, served.Detections.Count);
        foreach (var (e, s) in expected.Detections.Zip(served.Detections))
        {
            Assert.Equal(e.ClassId, s.ClassId);
            Assert.True(Math.Abs(e.Confidence - s.Confidence) < 1e-4, $"confidence {s.Confidence} served, {e.Confidence} direct");
            var (eb, sb) = (e.Box, s.Box);
            Assert.True(new[] { eb.X1 - sb.X1, eb.Y1 - sb.Y1, eb.X2 - sb.X2, eb.Y2 - sb.Y2 }.All(d => Math.Abs(d) < 0.02),
                $"box {sb} served, {eb} direct");
        }
    }
}
