using Osprey.Config;
using Osprey.Models;
using Osprey.Models.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Distillation;

/// <summary>
/// The distillation teacher (<c>distill_model=</c>): loaded as <c>model=</c> loads (Osprey weights, .pt, ONNX import),
/// checked against the student (the same family, the same classes), then frozen: eval mode, no gradients, on the
/// student's device under the run's cast policy. Never trained, averaged or saved (checkpoints keep only its path, in the
/// arguments).
/// </summary>
public static class Teacher
{
    /// <summary>Loads and freezes the teacher of <paramref name="student"/>.</summary>
    /// <param name="path">distill_model=.</param>
    /// <param name="student">The student.</param>
    /// <param name="classNames">The dataset's class names (what the student learns).</param>
    /// <param name="device">The student's device.</param>
    /// <param name="policy">The run's cast policy.</param>
    /// <exception cref="ArgumentsException">It cannot be loaded, or is of another family or other classes.</exception>
    public static DetectionModel Load(string path, DetectionModel student, IReadOnlyList<string> classNames, Device device, CastPolicy policy)
    {
        DetectionModel teacher;
        try
        {
            teacher = ModelFactory.Create(path);
        }
        catch (Exception e) when (e is FileNotFoundException or ArgumentException or InvalidDataException)
        {
            throw new ArgumentsException($"distill_model={path}: the teacher cannot be loaded: {e.Message}");
        }
        try
        {
            Check(path, teacher, student, classNames);
        }
        catch
        {
            teacher.Dispose();
            throw;
        }
        teacher.to(device);
        teacher.eval();
        foreach (var parameter in teacher.parameters()) parameter.requires_grad = false;
        teacher.UseCastPolicy(policy);
        return teacher;
    }

    /// <summary>The family a model's head belongs to (YOLOv8, YOLO11, YOLOv10).</summary>
    public static string Family(DetectionModel model) => model.Head switch
    {
        V10Detect => "YOLOv10",
        Yolo11Detect => "YOLO11",
        Detect => "YOLOv8",
        var other => other.GetType().Name,
    };

    /// <summary>The channels of the layers that feed <paramref name="model"/>'s head, per level.</summary>
    public static long[] HeadInputChannels(DetectionModel model)
    {
        int last = model.LayerCount - 1;
        return model.Layers[last].From.Select(f => model.Layers[f < 0 ? last + f : f].OutChannels).ToArray();
    }

    static void Check(string path, DetectionModel teacher, DetectionModel student, IReadOnlyList<string> classNames)
    {
        string teacherFamily = Family(teacher), studentFamily = Family(student);
        if (teacherFamily != studentFamily || teacher.Head.Levels != student.Head.Levels)
            throw new ArgumentsException($"distill_model={path}: the teacher is a {teacherFamily} model and the student a {studentFamily} " +
                "model: distillation needs a teacher of the student's family (as Ultralytics, no cross-family distillation)");
        if (teacher.Nc != classNames.Count)
            throw new ArgumentsException($"distill_model={path}: the teacher has {teacher.Nc} classes and the student {classNames.Count}: " +
                "the teacher must be trained on the student's classes");
        if (teacher.Names.Select((n, i) => n == $"class{i}").All(x => x)) return; // unnamed (a YAML's default names): nc decides
        int mismatch = Enumerable.Range(0, classNames.Count).FirstOrDefault(i => teacher.Names[i] != classNames[i], -1);
        if (mismatch >= 0)
            throw new ArgumentsException($"distill_model={path}: the teacher's class names differ from the student's: class {mismatch} " +
                $"is '{teacher.Names[mismatch]}' for the teacher and '{classNames[mismatch]}' for the student");
    }
}
