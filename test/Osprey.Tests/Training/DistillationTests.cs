using System.Security.Cryptography;
using Osprey.Config;
using Osprey.Data;
using Osprey.Models;
using Osprey.Models.Building;
using Osprey.Tests.Models;
using Osprey.Training;
using Osprey.Training.Distillation;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>Knowledge distillation (distill_model=, dis=): the loss against a hand computation, the teacher's checks, a
/// distilled run (dis_loss logged, only the student saved, the teacher untouched) and resume.</summary>
public class DistillationTests
{
    static OspreyArgs Args(params string[] tokens) => ArgsParser.Parse(tokens);

    static readonly ShapesOptions Shapes = new(ImageSize: 64, TrainImages: 24, ValImages: 8, Seed: 3);

    /// <summary>A tiny YAML at a width scale (t: 0.0625, s8: 0.125) and class count.</summary>
    internal static string TinyYaml(string dir, string scale, int nc)
    {
        string path = Path.Combine(dir, $"tiny-{scale}-{nc}.yaml");
        File.WriteAllText(path, TestModels.TinyYaml(nc).Replace("scale: t", $"scale: {scale}")
            .Replace("t: [0.33, 0.0625, 1024]", "t: [0.33, 0.0625, 1024]\n  s8: [0.33, 0.125, 1024]"));
        return path;
    }

    /// <summary>A teacher weights file (random tiny s8 weights, the shapes classes named) with its sidecar.</summary>
    internal static string TeacherWeights(string dir)
    {
        string yaml = File.ReadAllText(TinyYaml(dir, "s8", ShapesDataset.Names.Count))
            + "\nnames: [" + string.Join(", ", ShapesDataset.Names) + "]\n";
        using var teacher = new DetectionModel(ModelConfig.Parse(yaml, "teacher.yaml"));
        string path = Path.Combine(dir, "teacher.safetensors");
        ModelWeights.Save(teacher, path);
        return path;
    }

    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void LossEqualsTheFormulaComputedByHand()
    {
        // two levels, batch 2, teacher channels 3 / 2, level sizes 2×2 and 1×2; a head with reg_max 1 and 2 classes
        var rng = new Random(7);
        long[][] shapes = { new long[] { 2, 3, 2, 2 }, new long[] { 2, 2, 1, 2 } };
        float[] Values(long n) => Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var student = shapes.Select(s => Values(s.Aggregate(1L, (a, b) => a * b))).ToArray();
        var teacher = shapes.Select(s => Values(s.Aggregate(1L, (a, b) => a * b))).ToArray();
        var maps = shapes.Select(s => Values(2 * (4 + 2) * s[2] * s[3])).ToArray();  // (b, 4·1 + 2, h, w)
        const double dis = 6.0;

        // by hand: per level Σ_b,c,p (s − t)² · max_k σ(logit_k) / (Σ_b,p max_k σ · c + 1e-9), summed, × dis
        double expected = 0;
        for (int level = 0; level < 2; level++)
        {
            long c = shapes[level][1], hw = shapes[level][2] * shapes[level][3];
            double numerator = 0, scoreSum = 0;
            for (int b = 0; b < 2; b++)
                for (int p = 0; p < hw; p++)
                {
                    double score = Enumerable.Range(0, 2).Max(k => Sigmoid(maps[level][(b * 6 + 4 + k) * hw + p]));
                    scoreSum += score;
                    for (int ch = 0; ch < c; ch++)
                    {
                        long index = (b * c + ch) * hw + p;
                        numerator += Math.Pow(student[level][index] - teacher[level][index], 2) * score;
                    }
                }
            expected += numerator / (scoreSum * c + 1e-9);
        }
        expected *= dis;

        using var scope = NewDisposeScope();
        var s = student.Select((v, i) => tensor(v).reshape(shapes[i])).ToArray();
        var t = teacher.Select((v, i) => tensor(v).reshape(shapes[i])).ToArray();
        var m = maps.Select((v, i) => tensor(v).reshape(2, 6, shapes[i][2], shapes[i][3])).ToArray();
        var scores = DistillationLoss.TeacherScores(m, levels: 2, regMax: 1);
        double actual = DistillationLoss.Compute(s, t, scores, dis).item<float>();
        Assert.Equal(expected, actual, 1e-4 * Math.Abs(expected));

        // an end-to-end teacher's two branches are averaged as logits before the sigmoid
        var doubled = m.Concat(m.Select(x => x * 3)).ToArray();
        var averaged = DistillationLoss.TeacherScores(doubled, levels: 2, regMax: 1);
        var byHand = DistillationLoss.TeacherScores(m.Select(x => x * 2).ToArray(), levels: 2, regMax: 1);
        for (int i = 0; i < 2; i++) Assert.True(averaged[i].allclose(byHand[i], rtol: 1e-6, atol: 1e-7));

        // data parallel: each rank's term over the global score sum adds up to the whole batch's term
        var half = (Func<Tensor, Tensor>)(x => x * 2);                    // two identical halves: the global sum is twice
        var firstHalf = DistillationLoss.Compute(s.Select(x => x.narrow(0, 0, 1)).ToArray(), t.Select(x => x.narrow(0, 0, 1)).ToArray(),
            scores.Select(x => x.narrow(0, 0, 1)).ToArray(), dis, half).item<float>();
        Assert.True(firstHalf < actual);
    }

    [Fact]
    public void ProjectorIsConvReluConvToTheTeachersChannels()
    {
        using var projector = new Projector(new long[] { 4, 8 }, new long[] { 6, 10 });
        var names = projector.named_parameters().Select(p => $"{p.name}:{string.Join('x', p.parameter.shape)}").ToArray();
        Assert.Equal(new[]
        {
            "levels.0.cv1.weight:6x4x1x1", "levels.0.cv1.bias:6", "levels.0.cv2.weight:6x6x1x1", "levels.0.cv2.bias:6",
            "levels.1.cv1.weight:10x8x1x1", "levels.1.cv1.bias:10", "levels.1.cv2.weight:10x10x1x1", "levels.1.cv2.bias:10",
        }, names);
        using var x = randn(2, 4, 3, 3);
        using var y = randn(2, 8, 2, 2);
        var outputs = projector.call(new[] { x, y });
        Assert.Equal(new long[] { 2, 6, 3, 3 }, outputs[0].shape);
        Assert.Equal(new long[] { 2, 10, 2, 2 }, outputs[1].shape);
    }

    [Fact]
    public void TeacherOfAnotherFamilyOrOtherClassesIsAClearError()
    {
        string dir = TestModels.TempDir();
        using var student = new DetectionModel(ModelConfig.Load(TinyYaml(dir, "t", 5)));
        var names = ShapesDataset.Names;

        var family = Assert.Throws<ArgumentsException>(() => Teacher.Load("yolo11n.yaml", student, names, CPU, CastPolicy.Float32));
        Assert.Contains("distill_model=yolo11n.yaml", family.Message);
        Assert.Contains("YOLO11", family.Message);
        Assert.Contains("YOLOv8", family.Message);

        string eighty = TinyYaml(dir, "s8", 80);
        var classes = Assert.Throws<ArgumentsException>(() => Teacher.Load(eighty, student, names, CPU, CastPolicy.Float32));
        Assert.Contains(eighty, classes.Message);
        Assert.Contains("80 classes", classes.Message);

        string renamed = Path.Combine(dir, "renamed.yaml");
        File.WriteAllText(renamed, File.ReadAllText(TinyYaml(dir, "s8", 5)) + "\nnames: [circle, rectangle, triangle, cross, moon]\n");
        var named = Assert.Throws<ArgumentsException>(() => Teacher.Load(renamed, student, names, CPU, CastPolicy.Float32));
        Assert.Contains("'moon'", named.Message);
        Assert.Contains("'star'", named.Message);

        using var teacher = Teacher.Load(TeacherWeights(dir), student, names, CPU, CastPolicy.Float32);
        Assert.False(teacher.training);
        Assert.All(teacher.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void DistilledRunLogsDisLossSavesOnlyTheStudentAndLeavesTheTeacherUntouched()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string teacher = TeacherWeights(dir);
        byte[] teacherBytes = File.ReadAllBytes(teacher);
        string student = TinyYaml(dir, "t", 80);
        var events = new List<TrainingEvent>();
        var done = new Trainer(Args($"data={data}", $"model={student}", "epochs=1", "imgsz=64", "batch=8", "workers=1", "device=cpu",
            $"project={dir}", "name=distilled", "plots=False", $"distill_model={teacher}", "dis=6.0"), events.Add).Train();

        var row = ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv")).Single();
        Assert.True(double.IsFinite(row["train/dis_loss"]) && row["train/dis_loss"] > 0, $"train/dis_loss {row["train/dis_loss"]}");
        Assert.Equal(0, row["val/dis_loss"]);
        Assert.Equal(4, events.OfType<BatchFinished>().Last().MeanLosses.Count);
        Assert.Equal("dis_loss", events.OfType<TrainingStarted>().Single().LossNames[3]);
        Assert.Equal(row["train/dis_loss"], TensorBoardScalar(done.RunDirectory, "train/dis_loss"), 5);

        // only the student: the weights hold exactly a plain student's tensors
        using var plain = ModelFactory.Create(student, ShapesDataset.Names.Count);
        Assert.Equal(plain.state_dict().Keys.Order(), ModelWeights.ReadShapes(done.LastWeights).Keys.Order());
        Assert.Equal(SHA256.HashData(teacherBytes), SHA256.HashData(File.ReadAllBytes(teacher)));
        Assert.Contains(teacher, File.ReadAllText(Path.Combine(done.RunDirectory, "args.yaml")));
    }

    [Fact]
    public void DistilledRunResumedEqualsAnUninterruptedOne()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string teacher = TeacherWeights(dir);
        string[] common = { $"data={data}", $"model={TinyYaml(dir, "t", 80)}", "epochs=2", "imgsz=64", "batch=8", "workers=2",
            "device=cpu", $"project={dir}", "warmup_epochs=0.1", "close_mosaic=1", "plots=False", $"distill_model={teacher}" };
        var straight = new Trainer(Args(common.Append("name=straight").ToArray())).Train();

        using var cancel = new CancellationTokenSource();
        var interrupted = new Trainer(Args(common.Append("name=resumed").ToArray()),
            e => { if (e is EpochFinished { Result.Epoch: 1 }) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => interrupted.Train(cancel.Token));
        string checkpoint = Path.Combine(dir, "resumed", "weights", "last.ckpt");
        var resumed = new Trainer(Args($"resume={checkpoint}", "workers=2")).Train();
        Assert.Equal(2, resumed.EpochsRun);

        using var a = ModelFactory.Create(straight.LastWeights);
        using var b = ModelFactory.Create(resumed.LastWeights);
        var bs = b.state_dict();
        foreach (var (key, value) in a.state_dict())
            Assert.True(Osprey.Runtime.HostCopy.Floats(value).AsSpan().SequenceEqual(Osprey.Runtime.HostCopy.Floats(bs[key])), $"{key} differs after resume");
        var rowsA = ResultsCsv.Read(Path.Combine(dir, "straight", "results.csv"));
        var rowsB = ResultsCsv.Read(Path.Combine(dir, "resumed", "results.csv"));
        foreach (string column in new[] { "train/box_loss", "train/dis_loss", "metrics/mAP50(B)", "lr/pg0" })
            Assert.Equal(rowsA[1][column], rowsB[1][column]);
    }

    [Fact]
    public void DistillationUnderBf16AutocastFollowsTheFp32Run()
    {
        // amp_dtype=bf16 on the CPU turns autocast on there: teacher, projector and student compute in bf16 where the cast
        // policy says so. The same one-epoch run in fp32 and bf16: dis_loss finite, close (bf16 keeps 8 bits of mantissa),
        // and not identical (so the bf16 path really ran).
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string teacher = TeacherWeights(dir);
        double DisLoss(string name, params string[] extra)
        {
            var done = new Trainer(Args(new[] { $"data={data}", $"model={TinyYaml(dir, "t", 80)}", "epochs=1", "imgsz=64", "batch=8",
                "workers=1", "device=cpu", $"project={dir}", $"name={name}", "plots=False", "val=False", $"distill_model={teacher}" }
                .Concat(extra).ToArray())).Train();
            return ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv")).Single()["train/dis_loss"];
        }
        double fp32 = DisLoss("fp32"), bf16 = DisLoss("bf16", "amp_dtype=bf16");
        Assert.True(double.IsFinite(bf16) && bf16 > 0, $"bf16 dis_loss {bf16}");
        Assert.True(Math.Abs(bf16 - fp32) < 0.05 * fp32, $"bf16 dis_loss {bf16} vs fp32 {fp32}");
        Assert.NotEqual(fp32, bf16);
    }

    [Fact]
    public void TeacherGivenAsItsOnnxExportDistilsAsTheWeightsFile()
    {
        // distill_model= takes any model= format: the teacher's ONNX export (batch norms folded into the convolutions)
        // imported back gives the same teacher up to float rounding, so the same first-epoch losses.
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(Shapes, dir);
        string weights = Path.Combine(dir, "teacher-n.safetensors"), onnx = Path.Combine(dir, "teacher-n.onnx");
        string yaml = File.ReadAllText(TinyYaml(dir, "n", ShapesDataset.Names.Count)) + "\nnames: [" + string.Join(", ", ShapesDataset.Names) + "]\n";
        using (var teacher = new DetectionModel(ModelConfig.Parse(yaml, "yolov8n.yaml")))    // a YOLOv8n: the import knows its scale
        {
            TestModels.RandomiseBatchNorms(teacher);                                        // folding them must matter
            ModelWeights.Save(teacher, weights);
            teacher.eval();
            Osprey.Onnx.OnnxExporter.Export(teacher, onnx, new Osprey.Onnx.OnnxExportOptions { Height = 64, Width = 64 });
        }
        IReadOnlyDictionary<string, double> Row(string name, string teacher)
        {
            var done = new Trainer(Args($"data={data}", $"model={TinyYaml(dir, "t", 80)}", "epochs=1", "imgsz=64", "batch=8", "workers=1",
                "device=cpu", $"project={dir}", $"name={name}", "plots=False", "val=False", $"distill_model={teacher}")).Train();
            return ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv")).Single();
        }
        var fromWeights = Row("weights", weights);
        var fromOnnx = Row("onnx", onnx);
        foreach (string column in new[] { "train/dis_loss", "train/box_loss", "train/cls_loss" })
            Assert.True(Math.Abs(fromWeights[column] - fromOnnx[column]) <= 1e-4 * Math.Abs(fromWeights[column]),
                $"{column}: {fromOnnx[column]} with the ONNX teacher vs {fromWeights[column]} with the weights file");
    }

    // The value of a scalar in the run's TensorBoard events file: its Summary.Value is tag (field 1, the tag's bytes) then
    // simple_value (field 2, wire type 5: byte 0x15 and a little-endian float32).
    static double TensorBoardScalar(string runDirectory, string tag)
    {
        byte[] bytes = File.ReadAllBytes(Directory.GetFiles(runDirectory, "events.out.tfevents.*").Single());
        byte[] key = System.Text.Encoding.UTF8.GetBytes(tag);
        int at = bytes.AsSpan().IndexOf(key);
        Assert.True(at > 0, $"no '{tag}' in the TensorBoard events");
        Assert.Equal(0x15, bytes[at + key.Length]);
        return BitConverter.ToSingle(bytes, at + key.Length + 1);
    }
}
