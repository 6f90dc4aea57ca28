using Onnx;
using OpenCvSharp;
using Osprey.Evaluation;
using Osprey.Inference;
using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Models.Heads;
using Osprey.Onnx;
using Osprey.Tests.Models;
using static TorchSharp.torch;

namespace Osprey.Tests.Onnx;

/// <summary>
/// YOLOv10's end-to-end export: output0 (B, 300, 6) = x1, y1, x2, y2, score, class from the one-to-one branch and a
/// top-k in the graph (no NMS); ONNX Runtime gives TorchSharp's rows; an import predicts as the source model.
/// </summary>
public class V10ExportTests
{
    static DetectionModel Source()
    {
        manual_seed(3);                                                     // the same weights whatever ran before
        var model = V10Models.Tiny(nc: 3);
        TestModels.RandomiseBatchNorms(model, seed: 3);
        V10Models.SpreadScores(model);
        return model;
    }

    [Fact]
    public void StaticExportIsTheOneToOneTopKAndMatchesTorchSharp()
    {
        using var model = Source();
        string path = Path.Combine(Path.GetTempPath(), $"osprey-v10-static-{Guid.NewGuid():N}.onnx");
        try
        {
            var proto = OnnxExporter.Export(model, path, new OnnxExportOptions { Height = 160, Width = 160, Batch = 2 });
            var meta = proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
            Assert.Equal("Ultralytics YOLOv10t model ", meta["description"]);
            Assert.Equal("True", meta["end2end"]);
            Assert.Equal("channels", proto.MetadataProps[^3].Key);                  // end2end after channels, then Osprey's version
            Assert.Equal("{0: 'class0', 1: 'class1', 2: 'class2'}", meta["names"]);
            // The one-to-many branch is not in the graph; the one-to-one branch and the DFL are.
            Assert.DoesNotContain(proto.Graph.Initializer, t => t.Name.StartsWith("model.22.cv", StringComparison.Ordinal));
            Assert.Contains(proto.Graph.Initializer, t => t.Name == "model.22.one2one_cv3.0.0.0.conv.weight");
            Assert.Contains(proto.Graph.Initializer, t => t.Name == "model.22.one2one_cv2.2.2.bias");
            Assert.Equal(new[] { "ReduceMax", "TopK", "GatherElements", "Flatten", "Div", "Mod" },
                new[] { "ReduceMax", "TopK", "GatherElements", "Flatten", "Div", "Mod" }.Where(op => proto.Graph.Node.Any(n => n.OpType == op)));
            Assert.DoesNotContain(proto.Graph.Node, n => n.OpType == "NonMaxSuppression");

            using var ort = new OrtRunner(path, threads: 1);
            Assert.Equal(new[] { 2, 3, 160, 160 }, ort.Session.InputMetadata["images"].Dimensions);
            Assert.Equal(new[] { 2, 300, 6 }, ort.Session.OutputMetadata["output0"].Dimensions);   // A = 400 + 100 + 25 = 525
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            manual_seed(11);
            var input = rand(2, 3, 160, 160);
            var ours = model.Predict(input);
            Assert.Equal(new long[] { 2, 300, 6 }, ours.shape);
            V10Models.AssertSameRows(ours, ort.Run(input));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void DynamicExportTakesAnyBatchAndSize()
    {
        using var model = Source();
        string path = Path.Combine(Path.GetTempPath(), $"osprey-v10-dynamic-{Guid.NewGuid():N}.onnx");
        try
        {
            foreach (int opset in new[] { 17, 18 })                               // ReduceMax's axes: attribute, then input
            {
                OnnxExporter.Export(model, path, new OnnxExportOptions { Dynamic = true, Height = 160, Width = 160, Opset = opset });
                using var ort = new OrtRunner(path, threads: 1);
                Assert.Equal(new[] { -1, 300, 6 }, ort.Session.OutputMetadata["output0"].Dimensions);
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                manual_seed(4);
                foreach (var input in new[] { rand(3, 3, 160, 224), rand(1, 3, 192, 128) })  // A = 735 and 504 ≥ 300
                    V10Models.AssertSameRows(model.Predict(input), ort.Run(input));
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The graph's top-k on the hand-made case of <see cref="V10DetectTests.HandCase"/> (k = 3).</summary>
    [Fact]
    public void GraphTopKSelectsTheHandCheckedRows()
    {
        var (decoded, expected) = V10DetectTests.HandCase();               // (1, 7, 6): 6 anchors, 3 classes
        var graph = new OnnxGraph(new OnnxExportOptions());
        graph.AddInput("images", 1L, 7L, 6L);
        var parts = graph.Split("/split", "images", 4, 3);                     // (1, 4, 6), (1, 3, 6)
        Assert.Equal(OnnxGraph.OutputName, V10Detect.EmitTopK(graph, "model.0", parts[0], parts[1], nc: 3, k: 3));
        graph.AddOutput(OnnxGraph.OutputName, 1L, 3L, 6L);
        string path = Path.Combine(Path.GetTempPath(), $"osprey-v10-topk-{Guid.NewGuid():N}.onnx");
        try
        {
            File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(graph.ToModel(Array.Empty<(string, string)>())));
            using var ort = new OrtRunner(path);
            using var scope = NewDisposeScope();
            Assert.Equal(expected, ort.Run(decoded).data<float>().ToArray());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ImportedExportPredictsAsTheSourceModel()
    {
        using var source = Source();
        string path = Path.Combine(Path.GetTempPath(), $"osprey-v10-import-{Guid.NewGuid():N}.onnx");
        try
        {
            OnnxExporter.Export(source, path, new OnnxExportOptions { Height = 160, Width = 160 });   // fuses source
            var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var reader = new OnnxConvReader(proto.Graph);
            var convs = reader.Nodes.Where(n => n.OpType == "Conv").Select(n => reader.ReadConv(n, path)).ToList();
            using var imported = V10Models.Tiny(nc: 3);
            Assert.Null(OnnxImport.TryLoad(imported, convs, new Dictionary<string, OnnxConv>()));
            foreach (var conv in convs) { conv.Weight.Dispose(); conv.Bias?.Dispose(); }

            // The one-to-many branch (not in the file) becomes a copy of the imported one-to-one branch.
            var state = imported.state_dict();
            foreach (var key in state.Keys.Where(k => k.StartsWith("model.22.cv", StringComparison.Ordinal)))
                Assert.True(state[key].SameAs(state[key.Replace("model.22.cv", "model.22.one2one_cv", StringComparison.Ordinal)]), key);

            imported.eval();
            imported.Fuse();
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                manual_seed(8);
                var input = rand(2, 3, 160, 160);
                Assert.True(imported.Predict(input).SameAs(source.Predict(input)));
            }
            using var image = Cv2.ImRead(Path.Combine(Osprey.Tests.Data.DataTestFiles.SharedData, "images", "bus.jpg"));
            using var ours = new Predictor(source, new PredictOptions { ImageSize = 160, Confidence = 0.001f });
            using var theirs = new Predictor(imported, new PredictOptions { ImageSize = 160, Confidence = 0.001f });
            var expected = ours.Predict(image).Detections;
            var actual = theirs.Predict(image).Detections;
            Assert.NotEmpty(expected);
            Assert.Equal(expected, actual);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
